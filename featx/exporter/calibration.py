"""Calibration for int8 smoothing: built-in texts (varied registers, lengths, scripts), as feeds.

They only set activation ranges; the parity gate is checked on other texts (the probe
texts in parity.py). Users add domain text with ``export(..., calibration_texts=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from featx.batching import plan_batches
from featx.encoders.transformer import TransformerEncoder

Feed = dict[str, NDArray[np.int64]]

_SENTENCES = (
    "A man is playing a guitar on the street corner.",
    "Two dogs are running through a field of tall grass.",
    "The children built a sandcastle before the tide came in.",
    "She poured the coffee and sat down by the window.",
    "A chef is slicing onions in a busy restaurant kitchen.",
    "The cyclist crossed the finish line just ahead of the pack.",
    "Heavy rain caused flooding in several coastal towns overnight.",
    "The museum reopened after a two-year renovation.",
    "An old fisherman mended his nets on the pier.",
    "The train to Edinburgh was delayed by forty minutes.",
    "This is easily the funniest comedy I have seen all year.",
    "The plot drags, the dialogue is wooden, and the ending makes no sense.",
    "A quietly moving portrait of grief, anchored by a superb lead performance.",
    "I wanted to like it, but it never finds its rhythm.",
    "Worth seeing for the cinematography alone.",
    "The battery died after two hours, which is unacceptable for the price.",
    "Fast shipping, well packaged, works exactly as described.",
    "Customer support never answered my emails.",
    "Honestly? Not bad at all.",
    "meh. it was ok i guess",
    "The central bank left interest rates unchanged at 4.25 percent.",
    "Shares of the chipmaker rose 7% after quarterly revenue beat estimates.",
    "The merger is expected to close in the second quarter, pending regulatory approval.",
    "Unemployment fell to its lowest level since 2019.",
    "Oil prices slipped as inventories grew more than analysts expected.",
    "The patient was admitted with chest pain and shortness of breath.",
    "Randomised trials showed no significant difference between the two treatments.",
    "Take one tablet twice daily with food unless directed otherwise.",
    "The enzyme catalyses the hydrolysis of ATP to ADP and inorganic phosphate.",
    "Mitochondria are the site of oxidative phosphorylation in eukaryotic cells.",
    "The court ruled that the contract was void for lack of consideration.",
    "Section 4(b) applies only where the tenant has given written notice.",
    "The defendant pleaded not guilty to all three charges.",
    "How do I reset my password if I lost access to my email?",
    "What is the capital of Australia?",
    "Why does the sky look blue during the day but red at sunset?",
    "Can you recommend a good book on the history of mathematics?",
    "Is it safe to run the update while the database is under load?",
    "Install the package with pip, then run the tests with pytest.",
    "The function returns None when the key is missing from the cache.",
    "Segmentation fault (core dumped) after upgrading the driver.",
    "Use a context manager so the file is closed even if an error is raised.",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "def mean(xs): return sum(xs) / len(xs)",
    "The quarterback threw for 300 yards and three touchdowns.",
    "She won the final set 7-5 after saving two match points.",
    "The striker scored twice in the last ten minutes.",
    "Preheat the oven to 200°C and line a tray with baking paper.",
    "Whisk the eggs with sugar until pale and fluffy.",
    "The hotel was clean, quiet, and ten minutes from the beach.",
    "Our flight was cancelled and we were rebooked for the next morning.",
    "The telescope captured a galaxy more than ten billion light years away.",
    "Researchers trained the model on 1.2 million labelled images.",
    "The new phone has a larger screen and a faster processor.",
    "Turn left at the second traffic light, then continue for 500 metres.",
    "Please find attached the invoice for March.",
    "Thanks so much for your help yesterday!!!",
    "lol that's hilarious 😂",
    "Happy birthday! 🎉🎂",
    "The meeting has been moved to Thursday at 3 pm.",
    "Die Katze schläft auf dem Sofa.",
    "El tren sale a las ocho de la mañana.",
    "Le musée est fermé le lundi.",
    "Москва — столица России.",
    "北京是中国的首都。",
    "今日はとても暑いですね。",
    "서울은 한국의 수도입니다.",
    "Ελπίζω να τα πούμε σύντομα.",
    "ok",
    "yes",
    "No.",
    "Hello, world!",
    "e = mc^2",
    "404 Not Found",
    "The year 1969 saw the first crewed Moon landing.",
    "Her address is 221B Baker Street, London NW1 6XE.",
    "Version 2.3.1 fixes a memory leak in the parser.",
    "Temperatures will reach 35 degrees on Saturday.",
    "The painting sold at auction for $4.5 million.",
    "He whispered, 'Don't tell anyone,' and walked away.",
)


def builtin_calibration_texts() -> list[str]:
    """The sentences, plus long texts made of them (long inputs have their own ranges)."""
    long_texts = [" ".join(_SENTENCES[i::8]) * 3 for i in range(8)]
    return [*_SENTENCES, *long_texts]


def calibration_feeds(encoder: TransformerEncoder, texts: Sequence[str]) -> list[Feed]:
    """Model inputs for ``texts``, windowed and batched as at inference."""
    tokenized = encoder.preparer.tokenize(list(texts), chunk=True, stride=0)
    lengths = [len(w) for w in tokenized.windows]
    batches = plan_batches(lengths, batch_size=encoder.batch_size, max_tokens=encoder.max_tokens)
    return [encoder.model_inputs([tokenized.windows[r] for r in rows]) for rows in batches]
