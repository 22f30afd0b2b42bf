"""Engines that change schemas on a target. See `engines.base` for the contract."""
