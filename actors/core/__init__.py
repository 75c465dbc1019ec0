"""The pure core: no threads, no I/O, no actors (order book, sync policies, calibration, codes,
wire events, the LIVE promise's shared socket state, log throttling)."""
