"""Canned answers in the notebook's tour-guide style, and their split into deltas.

Besides plain answers, some questions show the rest of what the Responses stream
carries: a reasoning summary before the answer (a day plan), a web search with url
citations (this week's events), and a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_WORD = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Citation:
    quote: str  # the cited words, exactly as they appear in the answer
    url: str
    title: str


@dataclass(frozen=True)
class ToolCall:
    """A function call the model makes (the relay runs it and continues with its output)."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class RemoteCall:
    """A call of a remote MCP server's tool: asked to be approved, or made (with its output)."""

    item_id: str  # mcpr_... for an approval request, mcp_... for a call
    server_label: str
    name: str
    arguments: str
    output: str = ""


@dataclass(frozen=True)
class Answer:
    text: str  # the answer, or what the model says when it refuses; empty: no message (it calls tools)
    refusal: bool = False
    reasoning: tuple[str, ...] = ()  # reasoning summary parts, streamed before the answer
    search: str | None = None  # a web search query, run before the answer
    citations: tuple[Citation, ...] = ()
    calls: tuple[ToolCall, ...] = ()  # function calls, instead of an answer
    approvals: tuple[RemoteCall, ...] = ()  # MCP calls to approve, instead of an answer
    remote_calls: tuple[RemoteCall, ...] = ()  # MCP calls made before the answer

    def annotations(self) -> list[dict[str, Any]]:
        """The citations as the Responses API's url_citation annotations, by character offsets."""
        annotations = []
        for citation in self.citations:
            start = self.text.index(citation.quote)
            end = start + len(citation.quote)
            annotation = {"type": "url_citation", "start_index": start, "end_index": end}
            annotations.append({**annotation, "url": citation.url, "title": citation.title})
        return annotations


_ANSWERS_JA = {
    ("爆弾", "武器", "ハッキング"): Answer(
        "申し訳ありませんが、そのご依頼にはお応えできません。観光地についてのご質問なら喜んでお手伝いします。",
        refusal=True,
    ),
    ("今週", "イベント", "最新"): Answer(
        "今週の滋賀県では、琵琶湖畔で**びわ湖花火の夕べ**（デモ）が開かれ、湖上に花火が上がります。"
        "彦根城では夜間特別公開が行われ、ライトアップされた天守を楽しめます。お出かけ前に最新情報をご確認ください。",
        search="滋賀県 今週 イベント",
        citations=(
            Citation(
                "琵琶湖畔で**びわ湖花火の夕べ**（デモ）が開かれ、湖上に花火が上がります",
                "https://example.com/demo/shiga/events",
                "デモ: 滋賀の今週のイベント",
            ),
            Citation(
                "彦根城では夜間特別公開が行われ",
                "https://example.org/demo/hikone-castle/night",
                "デモ: 彦根城 夜間特別公開",
            ),
        ),
    ),
    ("プラン", "計画", "モデルコース", "日帰り"): Answer(
        "京都1日モデルコースです。\n\n"
        "1. **朝**: 混雑前の**清水寺**へ。舞台からの眺めは格別です。\n"
        "2. **昼**: 祇園を散策し、湯豆腐でランチ。\n"
        "3. **午後**: 伏見稲荷大社の千本鳥居をくぐり、抹茶スイーツでひと休み。",
        reasoning=(
            "**旅程の組み立て**\n\n朝は混雑前の清水寺、昼は祇園、午後は伏見稲荷と回れば、移動が短く無理がありません。",
            "**食事の提案**\n\n昼は祇園で湯豆腐、午後の休憩に抹茶スイーツを入れて、京都らしい味も楽しめるようにします。",
        ),
    ),
    ("滋賀", "琵琶湖"): Answer(
        "滋賀県は日本最大の湖、**琵琶湖**を抱く自然豊かな県です。比叡山延暦寺や国宝・彦根城など歴史の見どころも多く、"
        "湖を一周するサイクリング「ビワイチ」も人気。近江牛や鮒ずしなどのグルメも楽しめますよ！"
    ),
    ("京都",): Answer(
        "京都は千年の都として栄えた古都です。**清水寺**や**金閣寺**、伏見稲荷大社の千本鳥居など見どころが満載。"
        "祇園の町並みを散策したり、湯豆腐や抹茶スイーツを味わったりと、四季折々の風情を楽しめます。"
    ),
    ("奈良",): Answer(
        "奈良は日本の歴史の始まりを感じられる場所です。**東大寺**の大仏や奈良公園の鹿たちは必見！"
        "春日大社や法隆寺など世界遺産も多く、柿の葉寿司など素朴な郷土料理も魅力です。"
    ),
    ("北海道",): Answer(
        "北海道は雄大な自然が広がる日本最北の地です。夏は**富良野**のラベンダー畑、冬は札幌の雪まつりが見事！"
        "新鮮な海の幸やジンギスカン、濃厚なソフトクリームなど、食の楽しみも尽きません。"
    ),
    ("沖縄",): Answer(
        "沖縄はエメラルドグリーンの海に囲まれた南国の楽園です。**美ら海水族館**のジンベエザメや首里城は外せません。"
        "ゆったり流れる島時間の中で、ソーキそばやゴーヤーチャンプルーを味わってみてください。"
    ),
}
_DEFAULT_JA = Answer(
    "ようこそ！こちらは**デモモード**の観光ガイドです。滋賀県、京都、奈良、北海道、沖縄について聞いてみてください。"
    "「今週のイベント」（ウェブ検索と出典）や「京都の日帰りプラン」（思考の要約）、"
    "「京都は今何時？」（ツールの呼び出し）や「京都の天気は？」（MCP ツールの承認）も試せます。"
    "本物のモデルにつなぐには、設定 `OPENAI_ENDPOINT` にエンドポイントを指定します。"
)
_REASONING_JA = ("**質問の確認**\n\n観光地についての質問です。見どころ、歴史、食の魅力を短く紹介します。",)

_ANSWERS_EN = {
    ("bomb", "weapon", "hacking"): Answer(
        "I'm sorry, but I can't help with that. I'm happy to help with questions about places to visit.",
        refusal=True,
    ),
    ("this week", "events", "latest", "what's on"): Answer(
        "This week in Shiga, the **Lake Biwa fireworks evening (demo)** lights up the lake, and Hikone Castle "
        "opens for special night visits under illuminations. Check the latest details before you go.",
        search="Shiga events this week",
        citations=(
            Citation(
                "the **Lake Biwa fireworks evening (demo)** lights up the lake",
                "https://example.com/demo/shiga/events",
                "Demo: this week's events in Shiga",
            ),
            Citation(
                "Hikone Castle opens for special night visits",
                "https://example.org/demo/hikone-castle/night",
                "Demo: Hikone Castle night visits",
            ),
        ),
    ),
    ("itinerary", "day trip", "plan a", "plan for"): Answer(
        "A day in Kyoto:\n\n"
        "1. **Morning**: **Kiyomizu-dera** before the crowds, for the view from its wooden stage.\n"
        "2. **Midday**: stroll through Gion and have yudofu for lunch.\n"
        "3. **Afternoon**: walk the torii gates of Fushimi Inari, then rest with matcha sweets.",
        reasoning=(
            "**Building the route**\n\nKiyomizu-dera first, Gion at midday and Fushimi Inari in the afternoon "
            "keeps the travel short.",
            "**Choosing the food**\n\nYudofu in Gion for lunch and matcha sweets as a break give a taste of Kyoto.",
        ),
    ),
    ("kyoto",): Answer(
        "Kyoto was Japan's capital for a thousand years. Walk up to **Kiyomizu-dera**, through the thousands of "
        "torii gates at Fushimi Inari, and along the lanes of Gion at dusk, then warm up with yudofu and matcha sweets."
    ),
    ("shiga", "biwa"): Answer(
        "Shiga is home to **Lake Biwa**, Japan's largest lake. Cycle around it on the famous Biwaichi route, visit "
        "Hikone Castle and the temples of Mount Hiei, and save room for Omi beef."
    ),
    ("nara",): Answer(
        "Nara is where Japan's story begins. Meet the friendly deer of Nara Park, stand before the Great Buddha of "
        "**Todai-ji**, and wander the lantern-lined paths of Kasuga Taisha."
    ),
}
_DEFAULT_EN = Answer(
    "Welcome! This is the **demo mode** tour guide. Ask me about Kyoto, Shiga or Nara, "
    "about this week's events (a web search with sources), for a day trip plan (a reasoning summary), "
    "what time it is in Kyoto (a tool call) or about Kyoto's weather (an MCP tool to approve). "
    "To talk to a real model, set `OPENAI_ENDPOINT` to your endpoint."
)
_REASONING_EN = (
    "**Understanding the question**\n\nThe traveller asks about a place: I will introduce its sights, history "
    "and food in a few lines.",
)


def is_japanese(text: str) -> bool:
    return bool(_JAPANESE.search(text))


def answer_for(question: str) -> Answer:
    """The canned answer that fits the question's topic and language."""
    lowered = question.lower()
    japanese = is_japanese(question)
    answers = _ANSWERS_JA if japanese else _ANSWERS_EN
    for keywords, answer in answers.items():
        if any(keyword in lowered for keyword in keywords):
            return answer
    return _DEFAULT_JA if japanese else _DEFAULT_EN


def reasoning_for(question: str) -> tuple[str, ...]:
    """A reasoning summary for any question, for requests that ask for one."""
    return _REASONING_JA if is_japanese(question) else _REASONING_EN


def split_deltas(text: str, size: int | None = None) -> list[str]:
    """Token-sized pieces: words with their spaces, or two characters of Japanese; or `size` characters."""
    if size is not None:
        return [text[i : i + size] for i in range(0, len(text), size)]
    if _JAPANESE.search(text):
        return [text[i : i + 2] for i in range(0, len(text), 2)]
    return _WORD.findall(text)
