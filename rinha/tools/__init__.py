"""The workshop around the service: `rinha up` (stack), `rinha processor` (emulator) and
`rinha bench` (load tests). Needs the `tools` extra (`pip install 'rinha[tools]'`); the service
(`rinha serve`, everything directly under `rinha/`) imports nothing from here, and the Docker
image is built without it (`RINHA_SERVICE_ONLY=1`, setup.py)."""
