"""The policy core: the Cedar schema generated from the domain model, the base policies and `decide()`."""
