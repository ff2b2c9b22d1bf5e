"""What made prepare faster changes nothing it produces: a repeated tool schema is normalised
once (and no caller can change another's copy), and loss masks found by binary search over the
offsets are the ones the array search found."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from data_fixtures import WEATHER_TOOL, tiny_tokenizer, tool_conversation

from training import synthetic
from training.data import conversation, formats
from training.data.conversation import Conversation, ConversationError, normalize_tool
from training.data.formats import parse_line, read_xlam
from training.data.render import render, spans_to_token_mask

DIALECT_TOOL = {  # BFCL's and xLAM's type names: normalisation rewrites them
    "name": "book",
    "description": "Book a table.",
    "parameters": {
        "type": "dict",
        "properties": {
            "guests": {"type": "integer", "description": "how many"},
            "when": {"type": "float"},
            "tags": {"type": "List[str]"},
            "extra": {"type": "dict", "properties": {"note": {"type": "str"}}},
        },
        "required": ["guests"],
    },
}


def catalog() -> list[dict[str, Any]]:
    """Every tool of the synthetic catalog, as the data files carry them, plus the dialects."""
    seen: dict[str, dict[str, Any]] = {}
    for conv in synthetic.generate(60, seed=5):
        for tool in conv.to_record()["tools"]:
            seen[json.dumps(tool)] = tool
    weather: dict[str, Any] = WEATHER_TOOL
    return [*seen.values(), weather, weather["function"], DIALECT_TOOL]


def test_cached_normalisation_equals_the_uncached_one() -> None:
    conversation._normalized_tool_json.cache_clear()
    tools = catalog()
    assert len(tools) > 10
    for tool in tools:
        want = conversation._normalize_tool(copy.deepcopy(tool))
        for _ in range(3):  # the first call fills the cache, the others read it
            got = normalize_tool(copy.deepcopy(tool))
            assert got == want
            assert json.dumps(got) == json.dumps(want)  # key order too: the template prints it
    info = conversation._normalized_tool_json.cache_info()
    assert (info.misses, info.hits) == (len(tools), 2 * len(tools))
    normalized = normalize_tool(DIALECT_TOOL)["function"]["parameters"]
    assert normalized["type"] == "object"
    assert normalized["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}


def test_no_caller_can_change_another_callers_tool() -> None:
    weather: dict[str, Any] = WEATHER_TOOL
    first = normalize_tool(weather)
    first["function"]["parameters"]["required"].append("unit")
    first["function"]["name"] = "changed"
    second = normalize_tool(WEATHER_TOOL)
    assert second["function"]["name"] == "get_weather"
    assert second["function"]["parameters"]["required"] == ["city"]
    assert weather["function"]["parameters"]["required"] == ["city"]  # input untouched


def test_tools_differing_only_in_key_order_keep_their_own_order() -> None:
    a = {"name": "f", "parameters": {"type": "object", "properties": {"x": {}, "y": {}}}}
    b = {"name": "f", "parameters": {"type": "object", "properties": {"y": {}, "x": {}}}}
    props = [list(normalize_tool(t)["function"]["parameters"]["properties"]) for t in (a, b)]
    assert props == [["x", "y"], ["y", "x"]]


def test_bad_tools_still_fail_every_time() -> None:
    bad = {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "money"}}}}
    for _ in range(2):
        with pytest.raises(ConversationError, match="unknown type 'money'") as e:
            normalize_tool(bad)
        assert e.value.kind == "bad_tool"
    with pytest.raises(ConversationError, match="no function name"):
        normalize_tool({"description": "nameless"})
    with pytest.raises(ConversationError, match="not an object"):
        normalize_tool(["not", "a", "tool"])


def test_large_and_non_json_tools_are_normalised_uncached() -> None:
    conversation._normalized_tool_json.cache_clear()
    big = {"name": "big", "description": "x" * (conversation.TOOL_CACHE_MAX_CHARS + 1)}
    assert normalize_tool(big)["function"]["description"] == big["description"]
    odd = {"name": "odd", "parameters": {"type": "object", "properties": {}, "x-set": {1, 2}}}
    assert normalize_tool(odd)["function"]["parameters"]["x-set"] == {1, 2}
    assert conversation._normalized_tool_json.cache_info().currsize == 0


def test_every_reader_gets_the_same_conversation_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The readers' conversations with the cache, twice, equal those without it."""
    lines = [json.dumps(c.to_record()) for c in synthetic.generate(30, seed=2)]
    xlam = {
        "query": "Book for 4",
        "tools": json.dumps([{"name": "book", "description": "Book.",
                              "parameters": {"guests": {"type": "int"}}}]),
        "answers": json.dumps([{"name": "book", "arguments": {"guests": 4}}]),
    }  # fmt: skip

    def read_all() -> list[Any]:
        return [parse_line(line, i) for i, line in enumerate(lines, 1)] + [read_xlam(xlam, 99)]

    cached, again = read_all(), read_all()
    conversation._normalized_tool_json.cache_clear()
    monkeypatch.setattr(formats, "normalize_tool", conversation._normalize_tool)
    uncached = read_all()
    assert conversation._normalized_tool_json.cache_info().currsize == 0  # uncached indeed
    assert all(isinstance(c, Conversation) for c in uncached)
    assert cached == again == uncached


def _searchsorted_mask(starts: np.ndarray, ends: np.ndarray, s: int, e: int) -> list[bool] | str:
    """The mask of one span as `spans_to_token_mask` computed it with arrays (a refusal as
    text)."""
    i0 = int(np.searchsorted(starts, s, side="left"))
    i1 = int(np.searchsorted(ends, e, side="right")) - 1
    if i0 >= len(starts) or starts[i0] != s or i1 < 0 or ends[i1] != e:
        return "misaligned"
    mask = np.zeros(len(starts), dtype=bool)
    mask[i0 : i1 + 1] = True
    return mask.tolist()


def test_binary_search_masks_equal_the_array_search() -> None:
    """Real offsets (synthetic conversations, and text full of multi-byte characters, which
    byte-level tokens split): starts and ends never decrease, and spans aligned or cut
    anywhere get the same mask or the same refusal."""
    tok = tiny_tokenizer()
    texts = [render(tok, c).text for c in synthetic.generate(4, seed=9)]
    texts += [render(tok, tool_conversation()).text]
    texts += ["naïve café 東京 🌧️🌤 e\u0301 \t\t  spaces   \n\n" * 5, "🙂" * 30]
    batch = tok(texts, return_offsets_mapping=True, add_special_tokens=False)
    checked = aligned = 0
    for text, offsets in zip(texts, batch["offset_mapping"], strict=True):
        starts = np.asarray([s for s, _ in offsets], dtype=np.int64)
        ends = np.asarray([e for _, e in offsets], dtype=np.int64)
        assert (np.diff(starts) >= 0).all()
        assert (np.diff(ends) >= 0).all()
        points = sorted({0, len(text), *range(0, len(text), 5), *starts.tolist(), *ends.tolist()})
        step = max(1, len(points) // 40)
        for i, s in enumerate(points[::step]):
            for e in points[i * step :: step]:
                want = _searchsorted_mask(starts, ends, s, e)
                try:
                    got: list[bool] | str = spans_to_token_mask(offsets, [(s, e)]).tolist()
                except ConversationError:
                    got = "misaligned"
                assert got == want, (s, e)
                checked += 1
                aligned += got != "misaligned"
    assert checked > 3000
    assert aligned > 1000
