"""Realistic, seeded inputs for the corpus models of `.zoo/` (see tests/corpus/build.py).

Every maker is deterministic in its seed. Calibration and held-out validation are always made from
different samples: different seeds for rendered text and synthesized audio, disjoint halves of the
sentence list for MiniLM.

- PP-OCR detector: pages of rendered lines, (N, 3, H, W) normalised as PP-OCR does, (img/255-0.5)/0.5;
- PP-OCR recogniser: single lines resized to height 48, padded with zeros to 320 wide, plus their strings;
- PP-OCR direction classifier: lines (N, 3, 48, 192), half of them rotated 180 degrees, plus labels;
- Silero VAD: streams of speech-like and non-speech audio at 16 kHz, fed chunk by chunk as silero's
  own OnnxWrapper does (64 samples of context before each 512-sample chunk, the state carried);
- MiniLM: real English sentences tokenised to a fixed length, batch-first int64.

``corpus_case(name, seed)`` gives (calibration feeds, validation feeds, task context) for one model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ZOO = Path(__file__).resolve().parents[2] / ".zoo"
MODELS = (
    *("ppocr_det", "ppocr_rec", "ppocr_cls", "silero_vad", "minilm"),
    *("lcnet_orientation", "picodet_layout", "oww_melspectrogram", "oww_embedding", "resemblyzer"),
)
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif-Bold.ttf",
)
REC_HEIGHT, REC_WIDTH = 48, 320
CLS_HEIGHT, CLS_WIDTH = 48, 192
SAMPLE_RATE = 16000
VAD_CHUNK, VAD_CONTEXT = 512, 64
VAD_STATE_SHAPE = (2, 1, 128)
MINILM_LENGTH = 32


class ZooMissing(FileNotFoundError):
    """A corpus model is not unpacked: `make zoo` builds `.zoo/`."""


def zoo_model(name: str) -> Path:
    """``.zoo/<name>.onnx`` (``name`` with or without ``.onnx``); a clear error when it is missing."""
    path = ZOO / (name if name.endswith(".onnx") else f"{name}.onnx")
    if not path.is_file():
        raise ZooMissing(f"{path} is missing: run `make zoo` to download and unpack the corpus models")
    return path


def zoo_available(*names: str) -> bool:
    return all((ZOO / f"{n}.onnx").is_file() for n in (names or MODELS))


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """The arrays into ``path`` (uncompressed .npz, one entry per name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


# --- rendered text -----------------------------------------------------------------------------------

WORDS = (
    "invoice total amount date order number customer address street city station platform north south "
    "east west receipt payment cash card change tax price quantity item coffee tea bread milk water "
    "hotel room floor exit entrance open closed monday tuesday friday sunday january march april july "
    "october december model serial version battery power warning danger caution speed limit parking "
    "ticket gate seat row class train bus airport terminal flight departure arrival delayed cancelled "
    "meeting agenda project report summary chapter page section table figure note reference library "
    "museum school hospital pharmacy bank office market garden river bridge tower center museum"
).split()
CAPITALIZED = ("Total", "Date", "Invoice", "Name", "Phone", "Email", "Room", "Gate", "Page", "Order", "Tel")


def _word(rng: np.random.Generator) -> str:
    word = str(rng.choice(WORDS))
    style = rng.random()
    if style < 0.2:
        return word.upper()
    if style < 0.45:
        return word.capitalize()
    return word


def _number(rng: np.random.Generator) -> str:
    kind = rng.integers(6)
    if kind == 0:
        return str(rng.integers(0, 100000))
    if kind == 1:
        return f"{rng.integers(0, 1000)}.{rng.integers(0, 100):02d}"
    if kind == 2:
        return f"{rng.integers(2000, 2030)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
    if kind == 3:
        return f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(1990, 2030)}"
    if kind == 4:
        return f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"
    return f"${rng.integers(1, 500)}.{rng.integers(0, 100):02d}"


def _code(rng: np.random.Generator) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return "".join(str(rng.choice(list(letters))) for _ in range(rng.integers(1, 4))) + str(rng.integers(10, 9999))


def random_text(rng: np.random.Generator, max_chars: int = 14) -> str:
    """A short line: words, a number, a date, a code or a mix (``Total: 12.50``), at most ``max_chars``."""
    kind = rng.integers(5)
    if kind == 0:
        text = _word(rng)
    elif kind == 1:
        text = _number(rng)
    elif kind == 2:
        text = f"{rng.choice(CAPITALIZED)}: {_number(rng)}"
    elif kind == 3:
        text = _code(rng)
    else:
        text = f"{_word(rng)} {_word(rng)}"
    if len(text) > max_chars:
        text = _word(rng)[:max_chars]
    return text


@lru_cache(maxsize=64)
def _font(index: int, size: int) -> Any:
    from PIL import ImageFont

    path = FONT_DIR / FONT_FILES[index % len(FONT_FILES)]
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable default font


def _font_for(rng: np.random.Generator, size: int) -> Any:
    return _font(int(rng.integers(len(FONT_FILES))), int(size))


def normalise(rgb: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB -> float32 CHW, (img/255 - 0.5)/0.5 as PP-OCR's preprocessing."""
    return ((rgb.astype(np.float32).transpose(2, 0, 1) / 255.0) - 0.5) / 0.5


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A light page: a tinted colour, a gentle gradient and slight noise, float HWC."""
    base = rng.uniform(200, 250) + rng.uniform(-8, 8, size=3)
    ramp = (
        np.linspace(0, rng.uniform(-15, 15), height)[:, None, None]
        + np.linspace(0, rng.uniform(-15, 15), width)[None, :, None]
    )
    page = base[None, None, :] + ramp + rng.normal(0, rng.uniform(1, 4), size=(height, width, 3))
    return np.clip(page, 0, 255)


def _ink(rng: np.random.Generator) -> tuple[int, int, int]:
    dark = rng.uniform(0, 70)
    return tuple(int(np.clip(dark + rng.uniform(-15, 15), 0, 255)) for _ in range(3))


def _render_line(rng: np.random.Generator, text: str, size: int) -> np.ndarray:
    """``text`` tightly cropped (a few pixels of margin) on a light background, uint8 HWC RGB."""
    from PIL import Image, ImageDraw

    font = _font_for(rng, size)
    left, top, right, bottom = font.getbbox(text)
    margin_x, margin_y = int(rng.integers(2, 9)), int(rng.integers(2, 7))
    width, height = right - left + 2 * margin_x, bottom - top + 2 * margin_y
    canvas = Image.fromarray(_background(rng, height, width).astype(np.uint8))
    ImageDraw.Draw(canvas).text((margin_x - left, margin_y - top), text, font=font, fill=_ink(rng))
    return np.asarray(canvas)


def _to_height(rgb: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """Resized to ``height`` keeping the aspect ratio (squeezed to ``max_width`` when wider), uint8 HWC."""
    from PIL import Image

    h, w = rgb.shape[:2]
    width = min(max_width, max(1, math.ceil(height * w / h)))
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def _pad_right(chw: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((chw.shape[0], chw.shape[1], width), np.float32)
    out[:, :, : chw.shape[2]] = chw
    return out


def text_pages(n: int, height: int = 320, width: int = 320, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pages with several lines of words, numbers and dates at varied sizes and positions.

    Returns (x (n, 3, height, width) float32 normalised, boxes (n, height, width) bool: the union of
    the rendered lines' boxes, for checks). ``height``/``width``: multiples of 32, as the detector wants."""
    from PIL import Image, ImageDraw

    if height % 32 or width % 32:
        raise ValueError(f"page {height}x{width}: the detector wants multiples of 32")
    rng = _rng(seed, 1)
    pages = np.empty((n, 3, height, width), np.float32)
    boxes = np.zeros((n, height, width), bool)
    for i in range(n):
        page = Image.fromarray(_background(rng, height, width).astype(np.uint8))
        draw = ImageDraw.Draw(page)
        y = int(rng.integers(6, 30))
        while True:
            size = int(rng.integers(14, 32))
            font = _font_for(rng, size)
            text = " ".join(random_text(rng) for _ in range(rng.integers(1, 3)))
            left, top, right, bottom = font.getbbox(text)
            if right - left > width - 12:
                text = random_text(rng, 10)
                left, top, right, bottom = font.getbbox(text)
            if y + bottom - top > height - 6 or right - left > width - 12:
                break
            x = int(rng.integers(6, max(7, width - 6 - (right - left))))
            draw.text((x - left, y - top), text, font=font, fill=_ink(rng))
            boxes[i, y : y + bottom - top, x : x + right - left] = True
            y += bottom - top + int(rng.integers(6, 28))
        pages[i] = normalise(np.asarray(page))
    return pages, boxes


def text_lines(n: int, seed: int = 0, width: int = REC_WIDTH) -> tuple[np.ndarray, list[str]]:
    """``n`` rendered lines for the recogniser: (x (n, 3, 48, width) float32, the strings rendered)."""
    rng = _rng(seed, 2)
    x = np.empty((n, 3, REC_HEIGHT, width), np.float32)
    strings = []
    for i in range(n):
        text = random_text(rng)
        line = _to_height(_render_line(rng, text, int(rng.integers(24, 48))), REC_HEIGHT, width)
        x[i] = _pad_right(normalise(line), width)
        strings.append(text)
    return x, strings


def classifier_lines(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lines for the direction classifier: (x (n, 3, 48, 192) float32, labels (n,) int64: 1 =
    rotated 180 degrees, every other line). The line is rotated before resizing and padding, as in a
    pipeline that crops an upside-down box."""
    rng = _rng(seed, 3)
    x = np.empty((n, 3, CLS_HEIGHT, CLS_WIDTH), np.float32)
    labels = np.arange(n, dtype=np.int64) % 2
    for i in range(n):
        line = _render_line(rng, random_text(rng, 10), int(rng.integers(24, 48)))
        if labels[i]:
            line = np.ascontiguousarray(line[::-1, ::-1])
        x[i] = _pad_right(normalise(_to_height(line, CLS_HEIGHT, CLS_WIDTH)), CLS_WIDTH)
    return x, labels


# --- audio -------------------------------------------------------------------------------------------

# (F1, F2, F3) of a few vowels, Hz
VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (640, 1190, 2390),
    (490, 1350, 1690),
)


@dataclass(frozen=True)
class Stream:
    """One audio stream: ``audio`` float32 at 16 kHz and ``speech`` (bool per sample) where speech-like
    sound was placed."""

    audio: np.ndarray
    speech: np.ndarray

    def chunk_speech(self, share: float = 0.5) -> np.ndarray:
        """Per 512-sample chunk: True where more than ``share`` of the chunk is speech."""
        count = len(self.audio) // VAD_CHUNK
        return self.speech[: count * VAD_CHUNK].reshape(count, VAD_CHUNK).mean(1) > share


def _resonator(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * math.pi * freq / SAMPLE_RATE
    return lfilter([1 - r], [1, -2 * r * math.cos(theta), r * r], x)


def _syllable(rng: np.random.Generator, seconds: float, f0: float) -> np.ndarray:
    """A voiced syllable: a glottal pulse train with a wandering pitch through three formants of a vowel,
    under a rise-and-fall envelope."""
    from scipy.signal import lfilter

    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pitch = f0 * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)))
    pitch *= np.linspace(1, rng.uniform(0.8, 1.15), n)
    phase = np.cumsum(pitch / SAMPLE_RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = lfilter([1.0], [1.0, -0.9], pulses)  # a softened glottal pulse
    vowel = VOWELS[rng.integers(len(VOWELS))]
    voiced = sum(_resonator(source, f * rng.uniform(0.92, 1.08), 60 + 40 * k) / (k + 1) for k, f in enumerate(vowel))
    return voiced * np.sin(np.pi * np.linspace(0, 1, n)) ** 0.6


def _fricative(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * SAMPLE_RATE)
    return _resonator(rng.standard_normal(n), rng.uniform(2500, 5000), 1500) * np.hanning(n) * 0.3


def speech_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """An utterance of about ``seconds``: syllables (some after a fricative) at a syllable rate of about
    4-6 Hz, a speaker's pitch of 100-220 Hz, short pauses; peak 1."""
    parts, total, f0 = [], 0, rng.uniform(100, 220)
    while total < seconds * SAMPLE_RATE:
        if rng.random() < 0.45:
            parts.append(_fricative(rng, rng.uniform(0.03, 0.08)))
        parts.append(_syllable(rng, rng.uniform(0.12, 0.28), f0 * rng.uniform(0.9, 1.1)))
        if rng.random() < 0.12:
            parts.append(np.zeros(int(rng.uniform(0.05, 0.12) * SAMPLE_RATE)))
        total = sum(len(p) for p in parts)
    audio = np.concatenate(parts)
    return audio / np.abs(audio).max()


def _non_speech(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Silence, a noise burst, a steady tone or a chirp."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    kind = rng.integers(4)
    if kind == 0:
        return np.zeros(n)
    if kind == 1:
        return rng.standard_normal(n) * 0.3 * np.hanning(n) ** 0.3
    if kind == 2:
        return 0.3 * np.sin(2 * np.pi * rng.uniform(300, 3000) * t)
    freq = np.linspace(rng.uniform(200, 800), rng.uniform(1000, 4000), n)
    return 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)


def vad_streams(k: int, seed: int = 0, seconds: float = 4.0) -> list[Stream]:
    """``k`` streams of about ``seconds`` each: pauses, utterances and non-speech events (silence, noise
    bursts, tones, chirps) over a low background noise, at a random gain per stream."""
    rng = _rng(seed, 4)
    streams = []
    for _ in range(k):
        total = int(seconds * SAMPLE_RATE)
        parts, speech = [], []
        while sum(len(p) for p in parts) < total:
            pause = np.zeros(int(rng.uniform(0.2, 0.7) * SAMPLE_RATE))
            is_speech = bool(rng.random() < 0.65)
            if is_speech:
                event = speech_like(rng, rng.uniform(0.6, 1.6))
            else:
                event = _non_speech(rng, rng.uniform(0.3, 0.9))
            parts += [pause, event]
            speech += [np.zeros(len(pause), bool), np.full(len(event), is_speech)]
        audio = np.concatenate(parts)[:total] * rng.uniform(0.1, 0.5)
        audio += rng.normal(0, rng.uniform(0.0005, 0.004), total)
        streams.append(Stream(audio.astype(np.float32), np.concatenate(speech)[:total]))
    return streams


def vad_chunks(audio: np.ndarray) -> np.ndarray:
    """The model inputs of a stream, (chunks, 576) float32: each 512-sample chunk after the previous 64
    samples (zeros before the first), as silero_vad's OnnxWrapper feeds its 16 kHz op15 model."""
    count = len(audio) // VAD_CHUNK
    body = audio[: count * VAD_CHUNK].astype(np.float32).reshape(count, VAD_CHUNK)
    context = np.zeros((count, VAD_CONTEXT), np.float32)
    context[1:] = body[:-1, -VAD_CONTEXT:]
    return np.concatenate([context, body], axis=1)


def ort_session(path: str | Path) -> Any:
    """An onnxruntime CPU session on one thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session(path: str | Path, runtime: str = "ort") -> Any:
    """A one-thread CPU session of ``path`` on ``runtime``: ``ort``, or ``openvino`` with an optional
    ``/PRECISION`` (f32, bf16, f16; none: OpenVINO's CPU default), as a manifest's ``speed.deploy`` names it."""
    if runtime == "ort":
        return ort_session(path)
    from edgeport.benchmarks.openvino_runtime import OpenVinoSession

    name, _, precision = runtime.partition("/")
    if name != "openvino":
        raise ValueError(f"runtime {runtime!r}: expected ort or openvino[/PRECISION]")
    return OpenVinoSession(path, 1, precision or None)


def run_batched(session: Any, feeds: dict[str, np.ndarray], batch: int = 8, output: int = 0) -> np.ndarray:
    """Output ``output`` of ``session`` over batch-first ``feeds``, ``batch`` samples per run."""
    count = len(next(iter(feeds.values())))
    # every output, then the one asked for by position: OpenVINO's session returns all of them whatever is named
    parts = [
        session.run(None, {k: v[start : start + batch] for k, v in feeds.items()})[output]
        for start in range(0, count, batch)
    ]
    return np.concatenate(parts)


def vad_replay(model: str | Path | Any, streams: list[Stream]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each stream streamed chunk by chunk through ``model`` (a path or a session) from a zero state, its
    own ``stateN`` carried into the next chunk's ``state``. Per stream: (speech probability per chunk,
    the state each chunk was fed, (chunks, 2, 1, 128))."""
    session = ort_session(model) if isinstance(model, str | Path) else model
    sr = np.array(SAMPLE_RATE, np.int64)
    replayed = []
    for stream in streams:
        chunks = vad_chunks(stream.audio)
        state = np.zeros(VAD_STATE_SHAPE, np.float32)
        probs, states = np.empty(len(chunks), np.float32), np.empty((len(chunks), *VAD_STATE_SHAPE), np.float32)
        for i, chunk in enumerate(chunks):
            states[i] = state
            out, state = session.run(["output", "stateN"], {"input": chunk[None], "state": state, "sr": sr})
            probs[i] = out[0, 0]
        replayed.append((probs, states))
    return replayed


def vad_calibration(model_path: str | Path, streams: list[Stream], zero_state: bool) -> dict[str, np.ndarray]:
    """Per-sample feeds of every chunk of ``streams``: input (N, 1, 576), state (N, 2, 1, 128), sr (N,)
    int64. ``zero_state=False``: each chunk's state is what the fp32 model carried into it, streaming
    the audio in order; True: every state is zeros (a calibration that never ran the stream)."""
    inputs = np.concatenate([vad_chunks(s.audio) for s in streams])[:, None, :]
    if zero_state:
        states = np.zeros((len(inputs), *VAD_STATE_SHAPE), np.float32)
    else:
        states = np.concatenate([fed for _, fed in vad_replay(model_path, streams)])
    return {"input": inputs, "state": states, "sr": np.full(len(inputs), SAMPLE_RATE, np.int64)}


# --- sentences ---------------------------------------------------------------------------------------

SENTENCES = """\
The train to Boston leaves from platform four at half past nine.
Please remember to water the plants while I am away next week.
The quarterly report shows a small increase in operating costs.
She finished the marathon in just under four hours.
Our flight was delayed because of heavy fog at the airport.
He spent the afternoon repairing the old wooden fence.
The museum is closed on Mondays and public holidays.
Add two cups of flour and a pinch of salt to the mixture.
The committee will vote on the new budget tomorrow morning.
My phone battery dies quickly when the screen is too bright.
The children built a sandcastle near the edge of the water.
Interest rates are expected to remain unchanged this quarter.
A sudden storm knocked out power across the northern suburbs.
The recipe calls for fresh basil, garlic and olive oil.
I could not find my keys anywhere this morning.
The software update fixes several security vulnerabilities.
Volunteers cleaned up the beach after the summer festival.
The library extended its opening hours during exam season.
Scientists discovered a new species of frog in the rainforest.
The meeting has been moved to the small conference room.
He apologised for arriving late to the interview.
The city plans to add more bicycle lanes downtown.
Fresh bread is baked every morning in the village bakery.
The hikers reached the summit just before sunset.
Our internet connection has been unreliable all week.
The orchestra performed a symphony by Beethoven last night.
Customers can return unused items within thirty days.
The dog barked at the mail carrier every single day.
The new vaccine was approved after extensive clinical trials.
She painted the kitchen a bright shade of yellow.
Traffic on the highway was backed up for several miles.
The professor explained the theory with simple examples.
We watched the fireworks from the roof of our building.
The restaurant offers a vegetarian option on every menu.
Heavy rain caused flooding in several low lying areas.
The startup raised ten million dollars in its first round.
He keeps a journal to record his thoughts every evening.
The printer on the third floor is out of paper again.
Tickets for the concert sold out within an hour.
The river froze completely during the coldest winter in decades.
Regular exercise improves both mood and sleep quality.
The detective found a crucial clue hidden under the carpet.
Our team won the regional championship for the first time.
The bridge will be closed for maintenance this weekend.
She speaks three languages fluently, including Japanese.
The company announced plans to open a factory overseas.
A gentle breeze carried the smell of the sea inland.
The patient was advised to rest and drink plenty of fluids.
The students presented their projects at the science fair.
Prices at the grocery store have risen sharply this year.
The cat curled up on the warm windowsill and fell asleep.
Engineers tested the prototype under extreme temperatures.
The election results will be announced late tonight.
I need to renew my passport before the summer holidays.
The farmers harvested the wheat before the rain arrived.
The novel tells the story of a family across three generations.
Solar panels now cover the roof of the town hall.
He forgot to attach the document to his email.
The bakery around the corner sells the best croissants.
A large crowd gathered to watch the parade.
The hospital opened a new wing for children.
The password must contain at least twelve characters.
Wind turbines were installed along the coastline.
The football match ended in a goalless draw.
Astronomers observed a comet passing close to the sun.
She adopted two kittens from the local shelter.
The bus service will run less often during the holidays.
The teacher asked the class to read the first chapter.
Our neighbours are renovating their house this summer.
The stock market fell sharply after the announcement.
How do I reset my password if I forgot it?
What time does the pharmacy open on Sundays?
Can you recommend a good book about ancient history?
Where is the nearest train station from here?
Why is the sky blue during the day?
Is it safe to drink tap water in this city?
How long does it take to bake a loaf of bread?
Which laptop is best for editing videos?
Do you know a quiet place to study nearby?
What are the symptoms of a common cold?
How many people live in the capital city?
When will the new bridge be finished?
Could you send me the slides from the presentation?
What is the difference between weather and climate?
How can I improve my public speaking skills?
Turn off the lights when you leave the room.
Please close the window before it starts raining.
Let me know if you need any help with the move.
Thank you for your quick reply to my question.
I am sorry, but the item you ordered is out of stock.
""".splitlines()

# A paraphrase of some of the sentences above (by index), for checks that embeddings make sense.
PARAPHRASES = {
    0: "The Boston train departs from platform 4 at 9:30.",
    4: "Thick fog at the airport made our flight late.",
    6: "On Mondays and public holidays the museum does not open.",
    14: "This morning I was unable to locate my keys.",
    22: "The village bakery bakes fresh bread each morning.",
    38: "All concert tickets were sold within sixty minutes.",
    61: "Passwords need to be at least twelve characters long.",
    69: "Share prices dropped steeply following the announcement.",
    71: "At what time does the pharmacy open on a Sunday?",
    86: "Please shut the window before the rain begins.",
}

_SUBJECTS = (
    "The manager", "My sister", "A local farmer", "The new intern", "Our neighbour", "The pilot", "The chef",
    "A young student", "The mayor", "The doctor", "An old friend", "The engineer", "The shop owner",
)  # fmt: skip
_VERBS = (
    "finished", "cancelled", "reviewed", "started", "postponed", "described", "organised", "forgot",
    "celebrated", "questioned", "praised", "criticised",
)  # fmt: skip
_OBJECTS = (
    "the annual budget", "a long trip to Spain", "the broken heating system", "the school play",
    "an urgent delivery", "the weekly market", "a difficult exam", "the garden party", "the research paper",
    "a charity run", "the team dinner", "the safety inspection",
)  # fmt: skip
_TIMES = (
    "yesterday", "last Friday", "after lunch", "early this morning", "two weeks ago", "before the holidays",
    "on Tuesday evening", "at the end of the month",
)  # fmt: skip


@lru_cache(maxsize=1)
def sentences() -> tuple[str, ...]:
    """About 200 English sentences: the hand-written ones above, then template sentences with varied
    vocabulary (seeded)."""
    rng = _rng(0, 5)
    written = [s for s in SENTENCES if s]
    made: list[str] = []
    while len(written) + len(made) < 200:
        made.append(f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TIMES)}.")
        made = list(dict.fromkeys(made))
    return (*written, *made)


@lru_cache(maxsize=1)
def _tokenizer(length: int) -> Any:
    from tokenizers import Tokenizer

    path = ZOO / "minilm_tokenizer" / "tokenizer.json"
    if not path.is_file():
        raise ZooMissing(f"{path} is missing: run `make zoo` to download and unpack the corpus models")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=length)
    tokenizer.enable_padding(length=length, pad_id=0, pad_token="[PAD]")
    return tokenizer


def tokenize(texts: list[str] | tuple[str, ...], length: int = MINILM_LENGTH) -> dict[str, np.ndarray]:
    """MiniLM's inputs for ``texts``, padded/truncated to ``length``: input_ids, attention_mask,
    token_type_ids, each (len(texts), length) int64."""
    encoded = _tokenizer(length).encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encoded], np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], np.int64),
        "token_type_ids": np.array([e.type_ids for e in encoded], np.int64),
    }


# --- corpus cases ------------------------------------------------------------------------------------


def det_case(seed: int = 0, calib: int = 16, val: int = 16) -> tuple[dict, dict, dict]:
    cx, _ = text_pages(calib, seed=2 * seed)
    vx, boxes = text_pages(val, seed=2 * seed + 1)
    return {"x": cx}, {"x": vx}, {"name": "ppocr_det", "layout": "batch-first", "val": {"x": vx}, "boxes": boxes}


def rec_case(seed: int = 0, calib: int = 64, val: int = 64) -> tuple[dict, dict, dict]:
    cx, _ = text_lines(calib, seed=2 * seed)
    vx, truth = text_lines(val, seed=2 * seed + 1)
    return {"x": cx}, {"x": vx}, {"name": "ppocr_rec", "layout": "batch-first", "val": {"x": vx}, "truth": truth}


def cls_case(seed: int = 0, calib: int = 64, val: int = 64) -> tuple[dict, dict, dict]:
    cx, _ = classifier_lines(calib, seed=2 * seed)
    vx, labels = classifier_lines(val, seed=2 * seed + 1)
    return {"x": cx}, {"x": vx}, {"name": "ppocr_cls", "layout": "batch-first", "val": {"x": vx}, "labels": labels}


def vad_case(seed: int = 0, streams: int = 6, seconds: float = 4.0, zero_state: bool = True) -> tuple[dict, dict, dict]:
    """Calibration: every chunk of ``streams`` streams, with zero states (``zero_state``, what a user
    who never streamed the audio gives) or the fp32 model's carried states. Validation: the chunks of
    other streams with the fp32 model's carried states; the judge replays those streams."""
    model = zoo_model("silero_vad")
    calib_streams = vad_streams(streams, seed=2 * seed)
    val_streams = vad_streams(streams, seed=2 * seed + 1)
    calib = vad_calibration(model, calib_streams, zero_state=zero_state)
    val = vad_calibration(model, val_streams, zero_state=False)
    return calib, val, {"name": "silero_vad", "layout": "per-sample", "val": val, "streams": val_streams}


def minilm_case(seed: int = 0, calib: int = 100) -> tuple[dict, dict, dict]:
    """The sentences shuffled by ``seed``: the first ``calib`` calibrate, the rest validate."""
    order = _rng(seed, 6).permutation(len(sentences()))
    texts = [sentences()[i] for i in order]
    val_texts = texts[calib:]
    val = tokenize(val_texts)
    return tokenize(texts[:calib]), val, {"name": "minilm", "layout": "batch-first", "val": val, "texts": val_texts}


CASES = {
    "ppocr_det": det_case,
    "ppocr_rec": rec_case,
    "ppocr_cls": cls_case,
    "silero_vad": vad_case,
    "minilm": minilm_case,
}


def all_cases() -> dict[str, Any]:
    """Every corpus model's case maker: the ones above, then the other kinds' (kinds.py, which builds on
    this module's makers, so it is imported here when asked for)."""
    from tests.corpus.kinds import CASES as OTHER_KINDS

    return {**CASES, **OTHER_KINDS}


def corpus_case(name: str, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """(calibration feeds, held-out validation feeds, task context) for corpus model ``name``; the
    context holds what its judge needs (``context["val"]``, the strings, labels or streams) and the
    feeds' layout (batch-first or per-sample)."""
    cases = all_cases()
    if name not in cases:
        raise KeyError(f"unknown corpus model {name!r}: one of {', '.join(cases)}")
    zoo_model(name)
    return cases[name](seed)


def first_feed(context: dict[str, Any]) -> dict[str, np.ndarray]:
    """One complete model input, batch 1, from the case's validation feeds (for latency)."""
    val = context["val"]
    if context["layout"] == "per-sample":
        return {k: np.array(v[0]) for k, v in val.items()}  # np.array keeps a rank-0 sample rank 0
    return {k: np.ascontiguousarray(v[:1]) for k, v in val.items()}
