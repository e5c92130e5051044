"""The sequential model `llmrec train` fits and `profile`/`rank --model` use: a causal transformer
over each user's latest items, whose item inputs come from the item table's text vectors."""
