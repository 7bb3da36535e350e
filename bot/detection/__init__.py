"""Detection: recognising leaked keys in text and diffs (and, later, abnormal key usage).

:mod:`bot.detection.leaks` is shared by the Slack leak watcher and ``keybot scan`` so a pasted key and a
committed key are recognised, attributed and reported the same way.
"""
