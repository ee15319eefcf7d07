"""The training job (run by a CronJob every minute): "retrains" the model and exits 0.

A real job would read the ratings ingested since the last run and write new model weights
for serving to load; this one only counts made-up ratings and says so.
"""

import datetime
import random

ratings = random.Random().randint(1000, 2000)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
print(f"{now} trained the model on {ratings} new ratings", flush=True)
