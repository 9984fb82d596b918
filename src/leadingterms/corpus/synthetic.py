"""The embedded synthetic corpus: short children's stories from a small grammar, with planted
associations (the ground truth that the basis functions should reveal).

Planted associations (token strings as the word tokenizer produces them):

- ``bigram`` (a, b): whenever the animal ``a`` is the subject of a sentence it is immediately
  followed by its own verb ``b`` ("the bird flew"), and ``b`` never follows anything else;
  ``a`` is followed by ``b`` in most of its occurrences.
- ``context`` (a, b): the object ``b`` appears only in stories that mention ``a`` earlier
  (a place and its object: "beach" ... "shell"; an animal and its favourite thing:
  "bird" ... "nest"), and every story that mentions ``a`` mentions ``b`` after it.

Deterministic: document ``i`` depends only on ``(seed, i)`` (its own ``random.Random``), so
``generate_documents(n, seed)[:k] == generate_documents(k, seed)``. Every document has at least
:data:`MIN_TOKENS` word tokens (> 64, enough for sequences of T = 64).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

GENERATOR_VERSION = 1
DEFAULT_DOCS = 3000
MIN_TOKENS = 72  # every document has at least this many word tokens (T + 1 = 65 for T = 64)

# animal -> (its verb: bigram, its favourite thing: context)
ANIMALS: dict[str, tuple[str, str]] = {
    "bird": ("flew", "nest"),
    "fish": ("swam", "bubble"),
    "dog": ("barked", "bone"),
    "cat": ("purred", "yarn"),
    "frog": ("hopped", "lily"),
    "bee": ("buzzed", "honey"),
    "horse": ("galloped", "hay"),
    "duck": ("quacked", "puddle"),
    "cow": ("mooed", "grass"),
    "owl": ("hooted", "moon"),
    "snake": ("slithered", "log"),
    "lion": ("roared", "cave"),
    "mouse": ("squeaked", "cheese"),
    "monkey": ("climbed", "banana"),
    "bunny": ("nibbled", "carrot"),
    "puppy": ("wagged", "stick"),
}

# place -> its object (context)
PLACES: dict[str, str] = {
    "beach": "shell",
    "forest": "acorn",
    "garden": "tulip",
    "farm": "tractor",
    "lake": "boat",
    "kitchen": "cookie",
    "park": "swing",
    "castle": "crown",
    "school": "crayon",
    "river": "pebble",
    "mountain": "sled",
    "library": "book",
}

NAMES = ["Tom", "Mia", "Ben", "Sue", "Max", "Anna", "Sam", "Lucy", "Jack", "Emma", "Leo", "Zoe", "Tim",
         "Amy", "Bob", "Kim", "Dan", "Eve", "Ross", "Nora"]
ADJECTIVES = ["big", "small", "little", "soft", "shiny", "tall", "funny", "kind", "brave", "old", "new",
              "warm", "cold", "bright", "quiet", "loud", "pretty", "tiny", "round", "fluffy", "strong",
              "gentle", "silly", "clever", "lovely", "dirty", "clean", "fast", "slow", "busy"]
COLOURS = ["red", "blue", "green", "yellow", "pink", "purple", "orange", "brown", "white", "black",
           "gold", "gray"]
EMOTIONS = ["happy", "sad", "excited", "scared", "proud", "sleepy", "curious", "surprised", "tired",
            "glad", "calm", "grumpy"]
NOUNS = ["ball", "kite", "hat", "box", "tree", "house", "door", "bed", "toy", "car", "cup", "bag", "rock",
         "leaf", "star", "hill", "window", "picture", "apple", "bread", "cake", "drum", "sock", "chair",
         "blanket", "basket", "bell", "bike", "train", "doll", "rope", "lamp", "spoon", "feather",
         "flag", "map", "key", "coat", "shoe", "bucket"]
VERBS = ["saw", "found", "liked", "wanted", "took", "made", "picked", "held", "carried", "painted",
         "hugged", "opened", "cleaned", "fixed", "lost", "dropped", "shared", "hid", "washed", "pushed",
         "pulled", "kicked", "drew", "counted", "loved", "watched", "touched", "smelled", "needed", "kept"]
ACTIONS = ["laughed", "smiled", "sang", "danced", "clapped", "jumped", "waved", "played", "rested",
           "cheered", "giggled", "yawned", "waited", "listened", "shouted", "whispered"]
FRIENDS = ["mom", "dad", "sister", "brother", "friend", "teacher", "grandma", "grandpa"]
TIMES = ["morning", "afternoon", "evening", "night", "day"]
MANNERS = ["up and down", "all day", "very fast", "again and again", "in a circle", "with joy",
           "so high", "around the tree", "far away", "very slowly", "all around"]


def planted_associations() -> list[dict[str, str]]:
    """Ground truth: ``{"kind": "bigram"|"context", "a": str, "b": str}`` (word-tokenizer strings)."""
    out = [{"kind": "bigram", "a": a, "b": verb} for a, (verb, _) in ANIMALS.items()]
    out += [{"kind": "context", "a": place, "b": obj} for place, obj in PLACES.items()]
    out += [{"kind": "context", "a": a, "b": thing} for a, (_, thing) in ANIMALS.items()]
    return out


def _story(rng: random.Random) -> str:
    """One story: a child, an animal and a place; the planted words are placed as documented."""
    name = rng.choice(NAMES)
    friend = rng.choice(FRIENDS)
    animal = rng.choice(list(ANIMALS))
    verb, thing = ANIMALS[animal]
    place = rng.choice(list(PLACES))
    obj = PLACES[place]
    c = rng.choice
    A = lambda: c(ADJECTIVES)
    opening = c([
        f"Once upon a time, there was a {A()} child named {name}.",
        f"One {c(TIMES)}, a {A()} child named {name} woke up.",
        f"There once was a {A()} kid called {name}.",
    ])
    intro = [
        opening,
        f"{name} had a {A()} pet {animal}. The {animal} {verb} {c(MANNERS)}.",
        f"One day, {name} and {c(['the', 'her', 'his'])} {friend} went to the {place}, "
        f"and the {animal} {verb} along.",
    ]
    middle: list[Callable[[], str]] = [
        lambda: f"The {animal} {verb} {c(MANNERS)}.",
        lambda: f"At the {place}, {name} found a {A()} {obj}.",
        lambda: f"The {obj} was {c(COLOURS)} and {A()}.",
        lambda: f"{name} {c(VERBS)} the {obj} and {c(ACTIONS)}.",
        lambda: f"Then the {animal} {verb} to the {thing}.",
        lambda: f"The {animal} {verb} to {name}, who had a {A()} {thing}.",
        lambda: f"{name} {c(VERBS)} a {c(COLOURS)} {c(NOUNS)} near the {c(NOUNS)}.",
        lambda: f"{name} felt {c(EMOTIONS)}.",
        lambda: f"The {friend} {c(ACTIONS)} and said, \"Look at the {c([obj, thing])}!\"",
        lambda: f"The sun was {c(ADJECTIVES)} and the sky was {c(COLOURS)}.",
        lambda: f"They {c(VERBS)} a {A()} {c(NOUNS)} together.",
        lambda: f"{name} {c(ACTIONS)} with the {friend}.",
    ]
    sentences = list(intro)
    target = rng.randint(MIN_TOKENS + 8, 150)
    n_tokens = _count(sentences)
    while n_tokens < target:
        s = c(middle)()
        sentences.append(s)
        n_tokens += _count([s])
    # every story mentions the place's object and the animal's thing at least once (after a)
    story = " ".join(sentences)
    if not re.search(rf"\b{obj}\b", story):
        sentences.append(f"At the {place}, {name} found a {A()} {obj}.")
    if not re.search(rf"\b{thing}\b", story):
        sentences.append(f"Then the {animal} {verb} to the {thing}.")
    sentences.append(c([
        f"In the end, {name} and the {animal} went home {c(EMOTIONS)}.",
        f"{name} loved the {place}, and the {animal} loved the {thing}.",
        f"That {c(TIMES)}, {name} was {c(EMOTIONS)} and the {animal} {verb} once more.",
    ]))
    # a paragraph break now and then, as in TinyStories
    out = []
    for i, s in enumerate(sentences):
        out.append(("\n" if i and rng.random() < 0.15 else (" " if i else "")) + s)
    return "".join(out)


def _count(sentences: list[str]) -> int:
    from leadingterms.corpus.tokenizers import word_tokens

    return sum(len(word_tokens(s)) for s in sentences)


def iter_documents(n_docs: int = DEFAULT_DOCS, seed: int = 0) -> Iterator[str]:
    """The ``n_docs`` stories one at a time; document i is a function of (seed, i) only."""
    if n_docs < 1:
        from leadingterms.errors import LeadingTermsError

        raise LeadingTermsError(f"the synthetic corpus needs at least 1 document, got {n_docs}")
    tag = f"leadingterms-synthetic-v{GENERATOR_VERSION}:{seed}"
    return (_story(random.Random(f"{tag}:{i}")) for i in range(n_docs))


def generate_documents(n_docs: int = DEFAULT_DOCS, seed: int = 0) -> list[str]:
    """``n_docs`` stories (a list); see :func:`iter_documents`."""
    return list(iter_documents(n_docs, seed))


def vocabulary() -> set[str]:
    """Every word token the grammar can produce (for tests and docs)."""
    from leadingterms.corpus.tokenizers import word_tokens

    words: set[str] = set()
    for s in generate_documents(400, seed=12345):
        words.update(word_tokens(s))
    return words
