"""Following a round up: who has answered, reminders, supervising agencies' sign-off."""
