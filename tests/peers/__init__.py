"""Real local stand-ins for the services ragstream talks to (OpenAI, ...), for tests."""
