"""Fast feed-forward style transfer (Johnson et al.): one network per style, one pass per image."""
