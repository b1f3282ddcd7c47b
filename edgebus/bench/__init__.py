"""Benchmark harnesses behind `edgebus bench` and benchmarks/: the MQTT clients behind
the Bus (bus.py), the store sync (sync.py), and a private Mosquitto to run them against
(mosquitto.py, also used by the tests). Nothing at run time imports them."""
