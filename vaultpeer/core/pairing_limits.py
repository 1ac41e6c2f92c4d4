"""Pairing's limits of time and attempts (docs/protocol.md, "Pairing"), in a module that imports
nothing, so that the local API's contract and the command line can name them without loading the
crypto stack. ``core.pairing_session`` applies them."""

#: How long a joiner has to send its commitment and its reveal (its device does that at once).
ATTEMPT_TIMEOUT = 10.0
#: Failed attempts to join (before any code was shown) after which an invitation ends.
MAX_FAILED_ATTEMPTS = 5
#: Attempts to join one invitation that may run at once (before any code is shown).
MAX_CONCURRENT_ATTEMPTS = 4
#: How long a person has to compare the codes and answer once they are shown; the rest of the
#: pairing (the other's answer, the roster exchange) has CONFIRM_FINISH seconds more.
CONFIRM_TIMEOUT = 120.0
CONFIRM_FINISH = 30.0
#: How much longer than CONFIRM_TIMEOUT a side that said yes waits for the other's answer.
CONFIRM_GRACE = 5.0
