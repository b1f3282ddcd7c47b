"""Algorithms reproduced for the papers' figures only, run by edgebus/experiments/:
ENTS (Zhang thesis, Ch. 3: task-DAG jobs over a mesh) and EdgeSplit (Ch. 4: split
learning on shared edge servers), with the network topology they share. Nothing at run
time imports them; tests/test_layers.py keeps it so."""
