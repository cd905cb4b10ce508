"""Example workflows for `drumline up`: definitions (`*.yaml`) and the producers they run."""
