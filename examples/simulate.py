"""Traffic for examples/experiment.yaml, sent the way an app sends it: through the Python SDK.

    python examples/simulate.py [--users 20000] [--lift 0.5] [--url http://127.0.0.1:8080]

Each simulated user from NL, BE or DE visits the checkout page: the SDK assigns a variant of
`checkout-page` in process (recording the exposure when the user is in the experiment) and the
user converts (`checkout_completed`) at 10%, or at 10% x (1 + lift) on the one-page checkout, and
pays for an order (`order_paid`, value 20 to 80) when converting. Needs FLAGD_SDK_KEY (an sdk key)
in the environment and the experiment started. Prints what it sent.
"""

from __future__ import annotations

import argparse
import os
import random
import sys

from flagd_sdk import Client

BASE_RATE = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20000, help="users to simulate (default 20000)")
    parser.add_argument("--lift", type=float, default=0.5, help="relative lift of one-page (default 0.5)")
    parser.add_argument("--url", default=os.environ.get("FLAGD_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    key = os.environ.get("FLAGD_SDK_KEY")
    if not key:
        print(
            "simulate.py: set FLAGD_SDK_KEY to an sdk key (flagd keys create --scope sdk NAME)",
            file=sys.stderr,
        )
        return 1
    rng = random.Random(args.seed)
    seen: dict[str, int] = {}
    converted = 0
    with Client(args.url, key) as flags:
        if flags.variant("checkout-page", "probe", {"country": "NL"}) is None:
            print(f"simulate.py: {flags.status()['last_error'] or 'no flag set'}", file=sys.stderr)
            return 1
        for number in range(args.users):
            user = f"sim-user-{number}"
            variant = flags.variant("checkout-page", user, {"country": rng.choice(["NL", "BE", "DE"])})
            seen[str(variant)] = seen.get(str(variant), 0) + 1
            rate = BASE_RATE * (1 + args.lift) if variant == "one-page" else BASE_RATE
            if rng.random() < rate:
                converted += 1
                flags.track("checkout_completed", user)
                flags.track("order_paid", user, value=round(rng.uniform(20, 80), 2))
        if not flags.flush(timeout=30):
            print("simulate.py: the server did not take every event within 30 s", file=sys.stderr)
            return 1
        status = flags.status()
    shown = ", ".join(f"{variant} {count}" for variant, count in sorted(seen.items()))
    print(f"{args.users} users ({shown}); {converted} converted; {status['sent']} events sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
