"""The QoS orchestrator's pure model (Amaizu et al.): the compression search (Algorithm
1), the model pool on disk, the QoS map P and the decision rule (Eq. 3). No bus, no
actors: the coordinator's orchestrator and the training commands both build on it."""
