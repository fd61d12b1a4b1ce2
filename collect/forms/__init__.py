"""Forms: a collection's rules and template, stamping, and issuing a round."""
