"""Tests for the outbound queue, rate limit and dispatcher."""
