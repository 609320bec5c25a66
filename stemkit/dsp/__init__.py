"""The DSP separation engine, shared by the sandbox's emulated vendors and the ``local``
provider (a baseline), and used for the SiSEC bracket's baseline."""
