"""What the clinician sees and hears: cues (what to say), boards (where the pins are), outputs."""
