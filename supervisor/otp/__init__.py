"""The generic OTP layer: imports nothing of depthkeeper outside itself (a test checks it).

supervisor.py (the Supervisor actor: strategies, intensity, backoff, escalation), spec.py
(child specs, restart window, backoff), base.py (``SupervisedActor``: exactly-once exit
reports), liveness.py (the zombie safety net), dispatch.py (many actors on few threads),
scheduler.py (timers), messages.py, errors.py.
"""
