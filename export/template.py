"""The prompt/response template stored in the manifest, so the runner needs no jinja.

* Checkpoint with a chat template (instruct models): the chat template is rendered ONCE here
  for the conversation [user: PROMPT, assistant: RESPONSE] with sentinel strings, and the
  sentinels are replaced by `{prompt}` / `{response}`. The runner splices text into that fixed
  string; the rendered text already holds BOS etc., so `add_special_tokens=False` (what
  `apply_chat_template(tokenize=True)` does). Templates that insert today's date (Llama-3.1)
  freeze the export date into the string.
* Otherwise: `"{prompt}\\n{response}"` with the tokenizer's own special tokens
  (`add_special_tokens=True`): e.g. `[CLS] prompt \\n response [SEP]` for BERT (one segment,
  simple concatenation, which is how sentence-transformers embeds a single text).
* A user-given template must contain `{prompt}` then `{response}` once each.
"""
from __future__ import annotations

from edge_omd.head.manifest import PROMPT_SLOT, RESPONSE_SLOT
from edge_omd.errors import ExportError

PLAIN_TEMPLATE = PROMPT_SLOT + "\n" + RESPONSE_SLOT
_P, _R = "\x00EDGEOMDPROMPT\x00", "\x00EDGEOMDRESPONSE\x00"


def check_template(template: str) -> str:
    if (not isinstance(template, str) or template.count(PROMPT_SLOT) != 1
            or template.count(RESPONSE_SLOT) != 1
            or template.index(PROMPT_SLOT) > template.index(RESPONSE_SLOT)):
        raise ExportError(f"template {template!r} must contain {PROMPT_SLOT} and then "
                          f"{RESPONSE_SLOT}, once each")
    return template


def build_template(tokenizer, kind: str, template: str | None = None) -> tuple[str, bool, str]:
    """Return (template, add_special_tokens, source) for the manifest."""
    if template is not None:
        return check_template(template), True, "user"
    if kind == "decoder" and getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "user", "content": _P}, {"role": "assistant", "content": _R}]
        try:
            text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
        except Exception as e:  # jinja errors come in many types
            raise ExportError(f"the checkpoint's chat template cannot be rendered ({e}); pass "
                              "template='...{prompt}...{response}...' explicitly") from e
        if text.count(_P) != 1 or text.count(_R) != 1 or text.index(_P) > text.index(_R):
            raise ExportError("the chat template does not place the prompt then the response "
                              "once each; pass template=... explicitly")
        for slot in (PROMPT_SLOT, RESPONSE_SLOT):
            if slot in text:
                raise ExportError(f"the rendered chat template already contains {slot}; "
                                  "pass template=... explicitly")
        return text.replace(_P, PROMPT_SLOT).replace(_R, RESPONSE_SLOT), False, "chat_template"
    return PLAIN_TEMPLATE, True, "plain"
