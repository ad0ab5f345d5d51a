"""The corpus: Unicode CLDR emoji names in eight languages, as shipped by the ``emoji`` package.

The ``emoji`` package (PyPI ``emoji``, BSD licence; the names come from Unicode CLDR) carries
each emoji's short name in 14 languages, written by CLDR's human translators. The task is to
tell the language of a name, e.g. "medalla de oro" -> es, "flagge fidschi" -> de.

What is kept, and why:

* Latin-script languages only (``LANGUAGES``): the others (ar, fa, ja, ko, ru, zh) would be
  told apart by their script alone.
* Fully-qualified emoji only, without skin-tone variants: a variant's name is its base name
  plus a templated "medium skin tone" phrase, which would mostly repeat the same text.
* A name that two languages spell the same ("zebra", "pizza") is dropped: its label is not
  defined. A name repeated within one language is kept once.

Each row keeps its emoji, so splits can be made by emoji: all translations of one emoji land in
the same split, and a test emoji is unseen in training in every language.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

LANGUAGES = ("de", "en", "es", "fr", "id", "it", "pt", "tr")
_SKIN_TONE = re.compile("[\U0001f3fb-\U0001f3ff]")


@dataclass(frozen=True)
class NameRow:
    """One emoji name: its text, its language code and the emoji it names."""

    text: str
    language: str
    emoji: str


def load_emoji_names(languages: tuple[str, ...] = LANGUAGES) -> list[NameRow]:
    """Read the emoji names of ``languages`` from the installed ``emoji`` package.

    Args:
        languages: ``emoji`` language codes (``emoji.LANGUAGES``).

    Returns:
        Rows in the package's emoji order, then in the order of ``languages``; the text is the
        name without colons, underscores turned into spaces, lowercased.
    """
    import emoji  # imported here so the module imports even where the package is missing

    unknown = set(languages) - set(emoji.LANGUAGES)
    if unknown:
        raise ValueError(f"emoji has no names for {sorted(unknown)}")
    emoji.config.load_language(list(languages))
    fully_qualified = emoji.STATUS["fully_qualified"]

    rows: list[NameRow] = []
    seen: set[tuple[str, str]] = set()
    for char, entry in emoji.EMOJI_DATA.items():
        if entry.get("status") != fully_qualified or _SKIN_TONE.search(char):
            continue
        for language in languages:
            name = entry.get(language)
            if not name:
                continue
            text = name.strip(":").replace("_", " ").lower()
            if (text, language) not in seen:
                seen.add((text, language))
                rows.append(NameRow(text, language, char))

    languages_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        languages_of[row.text].add(row.language)
    return [row for row in rows if len(languages_of[row.text]) == 1]
