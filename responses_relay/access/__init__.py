"""Who may use the relay: the caller's identity (`auth`), the owner of each response
(`owner`), and each user's daily token budget (`budget`)."""
