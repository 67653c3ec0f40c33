"""The optimisation: the problem (network, targets, objective), objectives, image
parameterisations, transforms, the stepper, the loop, the defaults by depth, recipes and results.
It never touches a run folder (:mod:`featinv.runs` is above)."""
