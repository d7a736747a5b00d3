"""Canned answers in the notebook's tour-guide style, and their split into deltas."""

from __future__ import annotations

import re

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_WORD = re.compile(r"\S+\s*|\s+")

_ANSWERS_JA = {
    ("滋賀", "琵琶湖"): (
        "滋賀県は日本最大の湖、**琵琶湖**を抱く自然豊かな県です。比叡山延暦寺や国宝・彦根城など歴史の見どころも多く、"
        "湖を一周するサイクリング「ビワイチ」も人気。近江牛や鮒ずしなどのグルメも楽しめますよ！"
    ),
    ("京都",): (
        "京都は千年の都として栄えた古都です。**清水寺**や**金閣寺**、伏見稲荷大社の千本鳥居など見どころが満載。"
        "祇園の町並みを散策したり、湯豆腐や抹茶スイーツを味わったりと、四季折々の風情を楽しめます。"
    ),
    ("奈良",): (
        "奈良は日本の歴史の始まりを感じられる場所です。**東大寺**の大仏や奈良公園の鹿たちは必見！"
        "春日大社や法隆寺など世界遺産も多く、柿の葉寿司など素朴な郷土料理も魅力です。"
    ),
    ("北海道",): (
        "北海道は雄大な自然が広がる日本最北の地です。夏は**富良野**のラベンダー畑、冬は札幌の雪まつりが見事！"
        "新鮮な海の幸やジンギスカン、濃厚なソフトクリームなど、食の楽しみも尽きません。"
    ),
    ("沖縄",): (
        "沖縄はエメラルドグリーンの海に囲まれた南国の楽園です。**美ら海水族館**のジンベエザメや首里城は外せません。"
        "ゆったり流れる島時間の中で、ソーキそばやゴーヤーチャンプルーを味わってみてください。"
    ),
}
_DEFAULT_JA = (
    "ようこそ！こちらは**デモモード**の観光ガイドです。滋賀県、京都、奈良、北海道、沖縄について聞いてみてください。"
    "本物のモデルにつなぐには、設定 `OPENAI_ENDPOINT` にエンドポイントを指定します。"
)

_ANSWERS_EN = {
    ("kyoto",): (
        "Kyoto was Japan's capital for a thousand years. Walk up to **Kiyomizu-dera**, through the thousands of "
        "torii gates at Fushimi Inari, and along the lanes of Gion at dusk, then warm up with yudofu and matcha sweets."
    ),
    ("shiga", "biwa"): (
        "Shiga is home to **Lake Biwa**, Japan's largest lake. Cycle around it on the famous Biwaichi route, visit "
        "Hikone Castle and the temples of Mount Hiei, and save room for Omi beef."
    ),
    ("nara",): (
        "Nara is where Japan's story begins. Meet the friendly deer of Nara Park, stand before the Great Buddha of "
        "**Todai-ji**, and wander the lantern-lined paths of Kasuga Taisha."
    ),
}
_DEFAULT_EN = (
    "Welcome! This is the **demo mode** tour guide. Ask me about Kyoto, Shiga or Nara. "
    "To talk to a real model, set `OPENAI_ENDPOINT` to your endpoint."
)


def answer_for(question: str) -> str:
    """The canned answer that fits the question's topic and language."""
    lowered = question.lower()
    japanese = bool(_JAPANESE.search(question))
    answers = _ANSWERS_JA if japanese else _ANSWERS_EN
    for keywords, answer in answers.items():
        if any(keyword in lowered for keyword in keywords):
            return answer
    return _DEFAULT_JA if japanese else _DEFAULT_EN


def split_deltas(text: str, size: int | None = None) -> list[str]:
    """Token-sized pieces: words with their spaces, or two characters of Japanese; or `size` characters."""
    if size is not None:
        return [text[i : i + size] for i in range(0, len(text), size)]
    if _JAPANESE.search(text):
        return [text[i : i + 2] for i in range(0, len(text), 2)]
    return _WORD.findall(text)
