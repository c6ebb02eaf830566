"""Web Push (RFC 8030) for broadcasts: a citizen's browser subscribes from the web chat page, and
emergency warnings and notices reach it as notifications even when the page is closed.

`subscription` parses and checks what the browser's PushManager hands over; `vapid` loads the
application server key (RFC 8292); `handler` is the gateway's side of subscribing (the public key and
the subscription endpoint); `sender` encrypts (RFC 8291, aes128gcm) and signs each message with
pywebpush and turns the push service's answer into the dispatcher's SendError kinds. Where the
subscriptions are kept is the gateway's business (the SubscriptionStore and Registrar protocols)."""
