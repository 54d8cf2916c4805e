"""Local tooling: the API Gateway emulator (`selador serve`), `selador invoke`, `selador token`."""
