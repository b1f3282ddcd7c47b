"""Collaborative edge scheduling (Zhang thesis): ENTS (Ch. 3), EdgeSplit (Ch. 4) and
DCEI/JSTSH (Ch. 5). Pure algorithms over numpy, networkx and cvxpy; the coordinator
actor turns their answers into retained `sched/policy/<node>` messages."""
