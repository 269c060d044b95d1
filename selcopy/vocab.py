"""The byte alphabet tasks write and models read: the one home of its constants.

Tasks and models never import each other; both (and the report) import this module.
"""

VOCAB = 256  # tokens are raw bytes
MASK = 0  # byte that hides the answer in the model's input
SPACE = 32  # byte that pads texts and answers
