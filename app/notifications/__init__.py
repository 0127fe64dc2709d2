"""Telling people an export ended: email delivery state, SES feedback over SNS."""
