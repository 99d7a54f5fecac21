"""The sensor side of central: enrolment state, the durable envelope outbox, the client and push."""
