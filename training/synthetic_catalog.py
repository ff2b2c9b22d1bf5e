"""The synthetic dataset's tool catalog: tools with JSON Schemas and, per tool, the requests a
user makes and the call that answers them (`INTENTS`). Shared by `training.synthetic` (SFT
conversations) and `training.synthetic_preference` (DPO pairs), which import it; neither imports
the other at module level.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.data.conversation import ToolCall


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
