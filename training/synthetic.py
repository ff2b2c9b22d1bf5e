"""A deterministic, learnable synthetic tool-calling dataset for tests, the end-to-end run and the
benchmark: realistic tools with JSON Schemas, in the OpenAI `messages` format.

Learnable on purpose: every argument is spelled out in the user's words and drawn from small value
sets, and each tool has its own phrasing, so a tiny model learns which tool to call and what to
fill in within a few hundred steps. The mix: single calls, parallel calls, call -> result ->
answer, and chit-chat that needs no tool; some turns carry reasoning. A filler company policy in
the system prompt brings conversations to a target mean length (tool schemas sit in the system
turn as well, as in production).

    python -m training.synthetic --output runs/synthetic.jsonl --n 2000 --seed 0
    python -m training.synthetic --preference --output runs/preference.jsonl --n 2000 --seed 0

`--preference` writes DPO preference pairs instead (`training.synthetic_preference`): each
conversation's assistant turn as `chosen` and the same turn with one labelled mistake as `rejected`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data.conversation import Conversation, Message, ToolCall, build


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _s(description: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": "string", **({"description": description} if description else {}), **extra}


CURRENCIES = ["USD", "EUR", "GBP", "JPY"]
LANGUAGES = ["French", "German", "Spanish", "Japanese"]
# Compact schemas (descriptions only where they carry a format) keep 3-6 tools near the mean
# length; types cover string, enum, integer, number and boolean, with required fields.
CATALOG: tuple[dict[str, Any], ...] = (
    _tool(
        "get_weather",
        "Current weather in a city.",
        {"city": _s(), "unit": _s(enum=["celsius", "fahrenheit"])},
        ["city"],
    ),
    _tool(
        "convert_currency",
        "Convert money between currencies.",
        {
            "amount": {"type": "number"},
            "from_currency": _s(enum=CURRENCIES),
            "to_currency": _s(enum=CURRENCIES),
        },
        ["amount", "from_currency", "to_currency"],
    ),
    _tool(
        "search_flights",
        "Search flights on a date.",
        {
            "origin": _s(),
            "destination": _s(),
            "date": _s("YYYY-MM-DD"),
            "passengers": {"type": "integer"},
            "nonstop": {"type": "boolean"},
        },
        ["origin", "destination", "date"],
    ),
    _tool("get_order_status", "Status of an order.", {"order_id": _s()}, ["order_id"]),
    _tool(
        "create_calendar_event",
        "Add a calendar event.",
        {
            "title": _s(),
            "date": _s("YYYY-MM-DD"),
            "time": _s("HH:MM"),
            "duration_minutes": {"type": "integer"},
        },
        ["title", "date", "time"],
    ),
    _tool(
        "send_email",
        "Send an email.",
        {"to": _s(), "subject": _s(), "body": _s()},
        ["to", "subject", "body"],
    ),
    _tool(
        "get_stock_price",
        "Latest stock price.",
        {"symbol": _s(), "exchange": _s(enum=["NASDAQ", "NYSE"])},
        ["symbol"],
    ),
    _tool("get_time", "Local time in a city.", {"city": _s()}, ["city"]),
    _tool(
        "book_hotel",
        "Book a hotel room.",
        {
            "city": _s(),
            "nights": {"type": "integer"},
            "guests": {"type": "integer"},
            "breakfast": {"type": "boolean"},
        },
        ["city", "nights"],
    ),
    _tool(
        "translate_text",
        "Translate text.",
        {"text": _s(), "target_language": _s(enum=LANGUAGES)},
        ["text", "target_language"],
    ),
)
TOOLS_BY_NAME = {t["function"]["name"]: t for t in CATALOG}

# Tools offered per conversation (those needed plus distractors), weighted towards fewer so the
# schemas leave room for the length target.
TOOL_COUNTS = (3, 4, 5, 6)
TOOL_COUNT_WEIGHTS = (0.4, 0.3, 0.2, 0.1)

CITIES = {"Paris": 18, "London": 12, "Tokyo": 22, "Berlin": 15, "Madrid": 27, "Rome": 24}
CONDITIONS = ["sunny", "cloudy", "rainy"]
RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 150.0}
ORDERS = {"A1001": "shipped", "A1002": "delivered", "B2001": "processing", "B2002": "cancelled"}
STOCKS = {"AAPL": 190.5, "MSFT": 410.25, "AMZN": 178.0, "NVDA": 880.75}
DATES = ["2026-03-14", "2026-04-02", "2026-05-20", "2026-06-11"]
PEOPLE = ["alice@example.com", "bob@example.com", "carol@example.com"]
SUBJECTS = ["Meeting notes", "Lunch", "Invoice", "Project update"]
TRANSLATIONS = {  # text -> one translation per LANGUAGES entry
    "Good morning": ("Bonjour", "Guten Morgen", "Buenos dias", "Ohayo gozaimasu"),
    "Thank you": ("Merci", "Danke", "Gracias", "Arigato"),
    "See you soon": ("A bientot", "Bis bald", "Hasta pronto", "Mata ne"),
}


@dataclass(frozen=True)
class Intent:
    """One thing the user asks: their words, the call it maps to, the tool's result, the answer."""

    ask: str
    call: ToolCall
    result: dict[str, Any]
    answer: str
    why: str


def _weather(r: random.Random) -> Intent:
    city = r.choice(list(CITIES))
    cond = CONDITIONS[len(city) % 3]
    if r.random() < 0.5:
        unit = r.choice(["celsius", "fahrenheit"])
        temp = CITIES[city] if unit == "celsius" else round(CITIES[city] * 9 / 5 + 32)
        ask, args = f"What's the weather in {city} in {unit}?", {"city": city, "unit": unit}
    else:
        unit, temp = "celsius", CITIES[city]
        ask, args = f"What's the weather like in {city}?", {"city": city}
    return Intent(
        ask,
        ToolCall("get_weather", args),
        {"temperature": temp, "unit": unit, "condition": cond},
        f"It is {temp} degrees {unit} and {cond} in {city}.",
        f"The user wants the weather in {city}, so I call get_weather.",
    )


def _currency(r: random.Random) -> Intent:
    amount = r.choice([50, 100, 250, 1000])
    src, dst = r.sample(CURRENCIES, 2)
    value = round(amount * RATES[dst] / RATES[src], 2)
    return Intent(
        f"Convert {amount} {src} to {dst}.",
        ToolCall("convert_currency", {"amount": amount, "from_currency": src, "to_currency": dst}),
        {"converted": value, "currency": dst},
        f"{amount} {src} is {value} {dst}.",
        f"This is a currency conversion from {src} to {dst}.",
    )


def _flights(r: random.Random) -> Intent:
    origin, dest = r.sample(list(CITIES), 2)
    date, n = r.choice(DATES), r.randint(1, 4)
    args: dict[str, Any] = {"origin": origin, "destination": dest, "date": date, "passengers": n}
    ask = f"Find flights from {origin} to {dest} on {date} for {n} passengers"
    if r.random() < 0.3:
        args["nonstop"] = True
        ask += ", nonstop only"
    price = 120 + 40 * n
    return Intent(
        ask + ".",
        ToolCall("search_flights", args),
        {"flights": 3, "cheapest_price": price, "currency": "EUR"},
        f"I found 3 flights from {origin} to {dest} on {date}; the cheapest is {price} EUR.",
        f"I need to search flights from {origin} to {dest}.",
    )


def _order(r: random.Random) -> Intent:
    order = r.choice(list(ORDERS))
    return Intent(
        f"What is the status of my order {order}?",
        ToolCall("get_order_status", {"order_id": order}),
        {"order_id": order, "status": ORDERS[order]},
        f"Your order {order} is {ORDERS[order]}.",
        "The user asks about an order, so I look up its status.",
    )


def _calendar(r: random.Random) -> Intent:
    title, date = r.choice(SUBJECTS), r.choice(DATES)
    time, minutes = r.choice(["09:00", "13:30", "16:00"]), r.choice([30, 45, 60])
    return Intent(
        f"Schedule '{title}' on {date} at {time} for {minutes} minutes.",
        ToolCall(
            "create_calendar_event",
            {"title": title, "date": date, "time": time, "duration_minutes": minutes},
        ),
        {"created": True},
        f"'{title}' is in your calendar on {date} at {time}.",
        "The user wants a calendar event.",
    )


def _email(r: random.Random) -> Intent:
    to, subject = r.choice(PEOPLE), r.choice(SUBJECTS)
    body = r.choice(["See you tomorrow.", "Thanks for your help.", "Please review."])
    return Intent(
        f"Email {to} with the subject '{subject}' saying '{body}'",
        ToolCall("send_email", {"to": to, "subject": subject, "body": body}),
        {"sent": True},
        f"Your email to {to} has been sent.",
        "The user asks me to send an email.",
    )


def _stock(r: random.Random) -> Intent:
    symbol = r.choice(list(STOCKS))
    exchange = "NASDAQ" if symbol != "AAPL" or r.random() < 0.5 else "NYSE"
    return Intent(
        f"What is the stock price of {symbol} on {exchange}?",
        ToolCall("get_stock_price", {"symbol": symbol, "exchange": exchange}),
        {"symbol": symbol, "price": STOCKS[symbol]},
        f"{symbol} trades at {STOCKS[symbol]} USD.",
        f"I need the latest price of {symbol}.",
    )


def _time(r: random.Random) -> Intent:
    city = r.choice(list(CITIES))
    hour = f"{(CITIES[city] % 12) + 8:02d}:00"
    return Intent(
        f"What time is it in {city}?",
        ToolCall("get_time", {"city": city}),
        {"time": hour},
        f"It is {hour} in {city}.",
        f"The user asks for the local time in {city}.",
    )


def _hotel(r: random.Random) -> Intent:
    city, nights, guests = r.choice(list(CITIES)), r.randint(1, 5), r.randint(1, 3)
    breakfast = r.random() < 0.5
    args = {"city": city, "nights": nights, "guests": guests, "breakfast": breakfast}
    with_breakfast = "with" if breakfast else "without"
    return Intent(
        f"Book a hotel in {city} for {nights} nights for {guests} guests {with_breakfast}"
        " breakfast.",
        ToolCall("book_hotel", args),
        {"booked": True, "confirmation": f"H{nights}{guests}"},
        f"Your hotel in {city} is booked for {nights} nights.",
        "The user wants a hotel booking.",
    )


def _translate(r: random.Random) -> Intent:
    text, language = r.choice(list(TRANSLATIONS)), r.choice(LANGUAGES)
    return Intent(
        f"Translate '{text}' into {language}.",
        ToolCall("translate_text", {"text": text, "target_language": language}),
        {"translation": TRANSLATIONS[text][LANGUAGES.index(language)]},
        f"In {language}: {TRANSLATIONS[text][LANGUAGES.index(language)]}.",
        "This is a translation request.",
    )


INTENTS: dict[str, Callable[[random.Random], Intent]] = {  # tool name -> its requests
    "get_weather": _weather,
    "convert_currency": _currency,
    "search_flights": _flights,
    "get_order_status": _order,
    "create_calendar_event": _calendar,
    "send_email": _email,
    "get_stock_price": _stock,
    "get_time": _time,
    "book_hotel": _hotel,
    "translate_text": _translate,
}
CHITCHAT = (
    ("Hi there!", "Hello! How can I help you today?"),
    ("Thanks, that's all.", "You're welcome! Have a great day."),
    ("Who are you?", "I am an assistant that can look things up and act for you."),
    ("Tell me a joke.", "Why did the function return early? It had no arguments."),
    ("What is the capital of France?", "The capital of France is Paris."),
)
POLICY = (
    "Answer in the same language as the customer.",
    "Be concise and friendly, and never invent facts.",
    "Use a tool whenever the request needs live data or an action.",
    "Do not call a tool for small talk or general knowledge.",
    "Confirm bookings and purchases with the details the tool returned.",
    "Dates are written as YYYY-MM-DD and times as HH:MM in local time.",
    "Prices are shown with their currency code, for example 120 EUR.",
    "If a request is ambiguous, ask one short clarifying question.",
    "Customer data is confidential and must not be repeated to third parties.",
    "Escalate complaints about damaged orders to the support team.",
    "Refunds are processed within five business days of approval.",
    "Loyalty members receive free breakfast at partner hotels.",
    "Flights may be changed free of charge up to 24 hours before departure.",
    "Weather reports refer to the current conditions in the city centre.",
    "Stock prices are delayed by fifteen minutes and are not investment advice.",
    "Emails are sent from the customer's verified address only.",
)
# Rendered tokens per character (measured with `training.tiny`'s tokenizer: JSON-heavy records
# and policy prose differ) and the chat template's fixed tools preamble, for estimating lengths
# without a tokenizer.
TOKENS_PER_CHAR = 0.383
PROSE_TOKENS_PER_CHAR = 0.5
TEMPLATE_TOKENS = 79
POLICY_HEADER = "\n\nPolicy:\n"


def _estimate_tokens(conv: Conversation) -> int:
    system = conv.messages[0].content
    prose = len(system) - system.index(POLICY_HEADER) if POLICY_HEADER in system else 0
    chars = len(json.dumps(conv.to_record()))
    return int(TEMPLATE_TOKENS + (chars - prose) * TOKENS_PER_CHAR + prose * PROSE_TOKENS_PER_CHAR)


def _conversation(
    r: random.Random, intents: list[Callable[[random.Random], Intent]]
) -> tuple[list[Message], list[str], str]:
    """Messages (after the system turn), the tools they need, and the scenario's name."""
    roll = r.random()
    think = r.random() < 0.3
    if roll < 0.15:
        ask, answer = r.choice(CHITCHAT)
        return [Message("user", ask), Message("assistant", answer)], [], "no_call"
    if roll < 0.35:
        two_tools = len(intents) > 1 and r.random() < 0.6
        a, b = r.sample(intents, 2) if two_tools else [r.choice(intents)] * 2
        first, second = a(r), b(r)
        while second.call == first.call:
            second = b(r)
        ask = f"{first.ask} Also, {second.ask[0].lower()}{second.ask[1:]}"
        why = f"Two requests: {first.why} {second.why}" if think else None
        calls = (first.call, second.call)
        return (
            [Message("user", ask), Message("assistant", "", why, calls)],
            [first.call.name, second.call.name],
            "parallel",
        )
    intent = r.choice(intents)(r)
    why = intent.why if think else None
    call = Message("assistant", "", why, (intent.call,))
    if roll < 0.6:
        return [Message("user", intent.ask), call], [intent.call.name], "single"
    return (
        [
            Message("user", intent.ask),
            call,
            Message("tool", json.dumps(intent.result)),
            Message("assistant", intent.answer),
        ],
        [intent.call.name],
        "multi_step",
    )


def generate(
    n: int,
    seed: int = 0,
    *,
    mean_tokens: int = 800,
    count_tokens: Callable[[Conversation], int] | None = None,
    tools: Sequence[str] | None = None,
    max_tools: int = max(TOOL_COUNTS),
) -> list[Conversation]:
    """`n` conversations, the same for the same `seed`, of `mean_tokens` rendered tokens on average.

    Lengths are estimated for the tiny tokenizer; pass `count_tokens` (`rendered_length(tok)`)
    to hit `mean_tokens` for another one. Filler only lengthens: below the natural length
    (about 720 tiny-tokenizer tokens, mostly tool schemas) a smaller target changes nothing.

    `tools` restricts the catalog (requests and distractors) and `max_tools` caps the tools
    offered per conversation: an easier, shorter set (``tools=["get_weather", "get_time"],
    max_tools=2, mean_tokens=0``, about 300 tokens) that a tiny model learns in fewer steps.
    """
    names_allowed = list(tools or INTENTS)
    if unknown := set(names_allowed) - set(INTENTS):
        raise ValueError(f"unknown tools {sorted(unknown)}; the catalog has {sorted(INTENTS)}")
    intents = [INTENTS[name] for name in names_allowed]
    r = random.Random(seed)  # noqa: S311 -- reproducible data, not secrets
    measure = count_tokens or _estimate_tokens
    empty = measure(_bare(POLICY_HEADER))
    policy_tokens = {s: measure(_bare(f"{POLICY_HEADER}- {s}")) - empty for s in POLICY}
    total, out = 0, []
    for i in range(n):
        system = "You are the assistant of Contoso Travel & Retail."
        messages, needed, kind = _conversation(r, intents)
        distractors = [t for t in names_allowed if t not in needed]
        count = min(r.choices(TOOL_COUNTS, TOOL_COUNT_WEIGHTS)[0], max_tools)
        names = list(dict.fromkeys(needed)) + r.sample(
            distractors, min(len(distractors), max(0, count - len(set(needed))))
        )
        r.shuffle(names)
        offered = [TOOLS_BY_NAME[name] for name in names]
        conv = build([Message("system", system), *messages], offered, meta={"kind": kind})
        # Aim each conversation at a spread around the mean, correcting the running total so
        # the mean lands on target even when some conversations are already long.
        target = r.uniform(0.6, 1.4) * mean_tokens + (mean_tokens * i - total) * 0.5
        budget = target - measure(conv)
        policy = []
        while budget > 0:
            sentence = r.choice(POLICY)
            policy.append(sentence)
            budget -= policy_tokens[sentence]
        if policy:
            system = system + POLICY_HEADER + "\n".join(f"- {s}" for s in policy)
            conv = build([Message("system", system), *messages], offered, meta={"kind": kind})
        total += measure(conv)
        out.append(conv)
    return out


def rendered_length(tokenizer: Any) -> Callable[[Conversation], int]:
    """`count_tokens` for `generate`: the exact rendered length with `tokenizer` (slower)."""
    from training.data.render import render_text

    return lambda conv: len(tokenizer(render_text(tokenizer, conv))["input_ids"])


def _bare(system: str) -> Conversation:
    return Conversation((Message("system", system), Message("assistant", "")))


def write(path: Path, conversations: list[Conversation]) -> Path:
    return _write_jsonl(path, [conv.to_record() for conv in conversations])


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


def cli(argv: list[str] | None = None) -> int:
    from training.cli_args import command_parser

    parser = command_parser("training.synthetic", __doc__)
    parser.add_argument("--output", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--n", type=int, default=1000, help="number of conversations")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same data")
    parser.add_argument(
        "--mean-tokens", type=int, default=800, help="target mean rendered length (tokens)"
    )
    parser.add_argument("--tools", nargs="+", choices=sorted(INTENTS), help="restrict the catalog")
    parser.add_argument(
        "--max-tools", type=int, default=max(TOOL_COUNTS), help="most tools one conversation offers"
    )
    parser.add_argument(
        "--preference",
        action="store_true",
        help="write DPO preference pairs (prompt, chosen, rejected, tools, meta) instead",
    )
    args = parser.parse_args(argv)
    convs = generate(
        args.n, args.seed, mean_tokens=args.mean_tokens, tools=args.tools, max_tools=args.max_tools
    )
    if args.preference:
        from training.synthetic_preference import preference_pairs

        print(_write_jsonl(args.output, preference_pairs(convs, args.seed)))
    else:
        print(write(args.output, convs))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
