"""Email events as they arrive: SendGrid's signed Event Webhook and one-click unsubscribes.

:mod:`martech.events.webhook` is the HTTP receiver (``martech webhook``), :mod:`martech.events.signature`
the ECDSA check and :mod:`martech.events.store` the durable, deduplicating write.
"""
