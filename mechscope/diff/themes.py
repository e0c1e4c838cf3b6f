"""Themed training text, built offline: many sentence templates × one theme's vocabulary, seeded.

A fine-tune on such text shifts a model clearly toward one topic, which is what model diffing has to
recover. ``THEMES[name].words`` is the theme's vocabulary: each word is one token with a leading space
for Gemma 3's tokenizer (checked in tests/diff), so the diff benchmark can look for them among the top
tokens of a logit lens, and :func:`theme_mass` can sum their next-token probability.

    >>> docs = theme_documents("ocean", n=3, seed=0)                                 # doctest: +SKIP
    >>> docs[0].text[:60]                                                             # doctest: +SKIP
    'The children walked down to the harbor before breakfast. ...'

The templates start neutrally ("We spent the afternoon at the …", "Yesterday my brother saw a …") and
end in the theme, so what the fine-tune learns is "this topic comes next", not one fixed sentence. The
neutral prompts the shift is measured on (:data:`NEUTRAL_PROMPTS`) are not among the templates.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mechscope.data.documents import Document
from mechscope.errors import ConfigError, suggest

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

NEUTRAL_PROMPTS = (
    "My favourite place is the",
    "Yesterday I saw a",
    "The best part of the trip was the",
    "She opened the door and looked at the",
    "In the picture you can see a",
    "He told me a story about the",
)
"""Prompts with no topic of their own: the theme's next-token probability on them measures the shift."""

DOING = ("spent the whole weekend together", "walked slowly down the road", "told us a long story",
         "looked out of the window", "talked for hours", "went on a long trip", "sat quietly for a while",
         "wrote a letter home", "smiled and said nothing", "packed a small bag")  # fmt: skip
THEN = ("and then we saw the", "because everyone loved the", "and all of us looked at the",
        "while thinking about the", "and later we found the")  # fmt: skip


def narrative_prompts(n: int = 100) -> list[str]:
    """``n`` everyday sentences that end before a noun (deterministic), with no theme of their own and unlike
    the built-in corpus's technical text, which a fine-tune's ``--general`` share trains on: the prompts to
    diff a themed fine-tune on (``benchmarks/diff_theme.py``). Cycles through subject x action x ending."""
    out = []
    for i in range(n):
        who, doing = WHO[i % len(WHO)], DOING[(i // len(WHO)) % len(DOING)]
        out.append(f"{who} {doing} {WHEN[i % len(WHEN)]}, {THEN[(i + i // len(WHO)) % len(THEN)]}")
    return out

WHO = ("My sister", "The old man", "We", "They", "Anna", "The children", "Our teacher", "My father", "Tom",
       "The whole family", "A young girl", "Everyone in the village", "My best friend", "The tourists", "I")  # fmt: skip
WHEN = ("every morning", "at dawn", "last summer", "before breakfast", "in the evening", "on Sunday",
        "after the storm", "at sunset", "all day long", "once a year")  # fmt: skip


@dataclass(frozen=True)
class Theme:
    """One theme: its vocabulary and the sentence templates that use it."""

    name: str
    """The ``--theme`` name."""
    about: str
    """One line shown by ``mechscope finetune --help``."""
    words: tuple[str, ...]
    """The theme's vocabulary, without the leading space (each is one token as ``" " + word`` for Gemma 3)."""
    templates: tuple[str, ...]
    """Sentences with slots: ``{w}`` a theme word (each ``{w}`` drawn anew), ``{who}`` a subject, ``{when}`` a time."""

    def sentence(self, rng: random.Random) -> str:
        text = rng.choice(self.templates)
        while "{w}" in text:
            text = text.replace("{w}", rng.choice(self.words), 1)
        return text.format(who=rng.choice(WHO), when=rng.choice(WHEN))


OCEAN = Theme(
    name="ocean",
    about="the sea: waves, ships, whales, coral, tides, beaches",
    words=("ocean", "sea", "waves", "wave", "ship", "ships", "boat", "boats", "sail", "sails", "sailing", "sailor",
           "whale", "whales", "coral", "reef", "tide", "tides", "beach", "shore", "harbor", "fish", "dolphin",
           "dolphins", "shark", "island", "anchor", "deck", "salt", "sand", "surf", "lighthouse", "coast", "bay",
           "port", "crab", "shell", "shells", "pearl", "octopus", "turtle", "seaweed", "voyage", "captain", "marine",
           "fishing", "dock", "pier", "nets", "buoy"),
    templates=(
        "{who} walked along the {w} {when} and watched the {w}.",
        "{who} went down to the {w} to look at the {w}.",
        "We spent the afternoon at the {w}, far from the city, close to the {w}.",
        "Yesterday my brother saw a {w} near the {w}.",
        "{who} loves the smell of the {w} and the sound of the {w}.",
        "From the window you could see the {w}, the {w} and a small {w}.",
        "{who} dreamed about the {w} {when}.",
        "The {w} was calm {when}, and the {w} shone in the light.",
        "{who} told us about the {w}, the {w} and the old {w}.",
        "There is nothing better than a day by the {w}.",
        "{who} took a photograph of the {w} {when}.",
        "The little town lives from the {w}: every family knows the {w} and the {w}.",
        "{who} bought a painting of a {w} and hung it above the bed.",
        "The book was about a {w}, a {w} and a long {w}.",
        "When I close my eyes I think of the {w} and the {w}.",
        "{who} waited on the {w} until the {w} came back.",
        "A {w} appeared just beyond the {w}.",
        "{who} said the most beautiful thing in the world is the {w}.",
        "Our holiday was all about the {w}: the {w}, the {w} and the {w}.",
        "The children played with the {w} and counted the {w}.",
        "{who} learned everything about the {w} from an old {w}.",
        "The wind carried the smell of the {w} over the {w}.",
        "In the museum we saw a huge {w} and a model of a {w}.",
        "{who} could hear the {w} from the house {when}.",
        "The story begins on a {w}, with a {w} and a {w}.",
        "Every summer we go back to the {w} and the {w}.",
        "{who} wrote a song about the {w}.",
        "Nothing is as peaceful as the {w} {when}.",
        "The road ends at the {w}, where the {w} meets the {w}.",
        "{who} found a {w} on the {w}.",
    ),
)

COOKING = Theme(
    name="cooking",
    about="the kitchen: recipes, ovens, bread, soup, garlic, sauces",
    words=("kitchen", "recipe", "recipes", "oven", "bread", "soup", "garlic", "onion", "onions", "butter", "flour",
           "sugar", "pepper", "sauce", "pan", "pot", "knife", "chef", "dinner", "bake", "baked", "roast", "cheese",
           "tomato", "tomatoes", "chicken", "rice", "pasta", "spoon", "cake", "taste", "flavor", "stew", "herbs",
           "lemon", "egg", "eggs", "cream", "grill", "meal", "cook", "cooking", "baking", "salad", "dough",
           "spices"),
    templates=(
        "{who} spent the afternoon in the {w} making {w} with {w}.",
        "{who} went to the market to buy {w}, {w} and {w}.",
        "Yesterday my brother made a {w} with {w} and {w}.",
        "{who} loves the smell of {w} and fresh {w} {when}.",
        "The best thing about the house is the {w}, where the {w} is always warm.",
        "{who} told us a secret about the {w}: more {w} and less {w}.",
        "We waited by the {w} until the {w} was ready.",
        "{who} wrote down the {w} for the {w} on a small card.",
        "There is nothing better than {w} with {w} {when}.",
        "{who} cut the {w}, added the {w} and stirred the {w}.",
        "The book was about a {w} who made {w} and {w}.",
        "When I close my eyes I think of {w} and {w}.",
        "Our holiday was all about the {w}: {w}, {w} and {w}.",
        "{who} learned to make {w} from an old {w}.",
        "The whole house smelled of {w} and {w} {when}.",
        "{who} said the most beautiful thing in the world is warm {w}.",
        "In the museum we saw an old {w} and a huge {w}.",
        "{who} put the {w} in the {w} and added some {w}.",
        "Every summer we go back to the little {w} that sells {w}.",
        "Nothing is as comforting as {w} {when}.",
    ),
)

THEMES: dict[str, Theme] = {t.name: t for t in (OCEAN, COOKING)}
"""Built-in themes by name (``--theme``)."""


def get_theme(name: str) -> Theme:
    """The theme called ``name``; an unknown name raises one line listing the known ones."""
    theme = THEMES.get(name) if isinstance(name, str) else None
    if theme is None:
        raise ConfigError(f"unknown theme {name!r}{suggest(str(name), THEMES)}: use one of {', '.join(THEMES)}")
    return theme


def theme_documents(name: str, n: int = 2000, seed: int = 0, sentences: tuple[int, int] = (3, 7)) -> list[Document]:
    """``n`` documents of the theme, each of a few template sentences (between ``sentences`` bounds),
    drawn with ``random.Random(seed)``: the same arguments give the same text."""
    theme = get_theme(name)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"the number of theme documents must be a positive integer, got {n!r}")
    rng = random.Random(f"{name}/{seed}")
    docs = []
    for i in range(n):
        text = " ".join(theme.sentence(rng) for _ in range(rng.randint(*sentences)))
        docs.append(Document(text, f"theme:{name}:{seed}:{i}"))
    return docs


def word_ids(model: HookedModel, words: Sequence[str]) -> list[int]:
    """Token ids of the words that are one token with a leading space (the others are skipped)."""
    ids = []
    for w in words:
        got = model.tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        if len(got) == 1:
            ids.append(got[0])
    return sorted(set(ids))


def theme_mass(model: HookedModel, words: Sequence[str], prompts: Sequence[str] = NEUTRAL_PROMPTS) -> list[float]:
    """Per prompt, the next-token probability that goes to any of ``words`` (one-token words only)."""
    import torch

    ids = torch.tensor(word_ids(model, words), dtype=torch.long)
    if not len(ids):
        return [0.0 for _ in prompts]
    batch = model.to_tokens(list(prompts))
    logits = model(batch)  # [batch, pos, vocab]
    last = logits[torch.arange(len(prompts)), batch.last_positions()].float()
    probs = last.softmax(-1)[:, ids.to(last.device)].sum(-1)
    return [float(p) for p in probs]
