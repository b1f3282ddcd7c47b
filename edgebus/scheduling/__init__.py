"""DCEI/JSTSH (Zhang thesis, Ch. 5): camera streams mapped onto a pool of edge devices.
Pure algorithms over numpy; the coordinator's stream scheduler runs them on the nodes'
retained status and turns their answers into retained `sched/policy/<node>` messages."""
