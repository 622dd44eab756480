"""Data health: alarms on the events that arrive (volume, schema drift, double firing), per event name and hour."""
