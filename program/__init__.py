"""The Pulumi program `redis-fleet`: typed stack config and resource builders."""
