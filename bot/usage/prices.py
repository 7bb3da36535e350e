"""Per-model token prices, to estimate per-minute cost from the usage API's per-minute tokens.

The costs API only has day buckets, so a minute's cost is an estimate: input and output tokens times
the model's list price (USD per token, standard tier, no cached-input discount). Model snapshots
(`gpt-4o-2024-08-06`) use their family's price through the longest matching prefix; an unknown model
is priced like `DEFAULT_MODEL`. Keep it in step with https://openai.com/api/pricing when it matters:
it feeds anomaly detection (relative changes), not billing.
"""

from __future__ import annotations

PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15e-6, 0.60e-6),
    "gpt-4o": (2.50e-6, 10.0e-6),
    "gpt-4.1-nano": (0.10e-6, 0.40e-6),
    "gpt-4.1-mini": (0.40e-6, 1.60e-6),
    "gpt-4.1": (2.00e-6, 8.00e-6),
    "o4-mini": (1.10e-6, 4.40e-6),
    "o3-mini": (1.10e-6, 4.40e-6),
    "o3": (2.00e-6, 8.00e-6),
    "o1": (15.0e-6, 60.0e-6),
    "gpt-4-turbo": (10.0e-6, 30.0e-6),
    "gpt-3.5-turbo": (0.50e-6, 1.50e-6),
}
DEFAULT_MODEL = "gpt-4o-mini"
_BY_LENGTH = sorted(PRICES, key=len, reverse=True)


def price(model: str | None) -> tuple[float, float]:
    """(input, output) USD per token for `model`."""
    if model:
        for name in _BY_LENGTH:
            if model == name or model.startswith(name + "-"):
                return PRICES[name]
    return PRICES[DEFAULT_MODEL]


def estimate_cost(model: str | None, input_tokens: int, output_tokens: int) -> float:
    price_in, price_out = price(model)
    return input_tokens * price_in + output_tokens * price_out
