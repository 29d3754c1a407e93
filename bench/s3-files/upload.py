"""Upload every file of a local directory to s3://BUCKET/PREFIX/ on the local S3 server
(pyarrow's S3FileSystem: multipart uploads), one file at a time, and check that each is
listed afterwards with its size. Usage: upload.py DIR BUCKET/PREFIX

One at a time, and checked: one run lost an object with no error from the copy. The server
kept its metadata but no file: s3s-fs's CompleteMultipartUpload forgot the upload, then
concatenated the parts (seconds for 778 MB) inside the request's future, and a client that
gave up meanwhile (the AWS C++ SDK under pyarrow times requests out after 3 s by default)
stopped it midway. Fixed in local-s3 (the complete runs to its end in its own task and a retry
gets the same object; test `a_complete_the_client_stops_waiting_for_still_completes_...`).
One upload at a time still keeps the server less loaded; the check makes a loss fail the run."""
import os
import sys

from pyarrow import fs

source, dest = sys.argv[1:3]
s3 = fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http",
                     access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                     region="us-east-1")
fs.copy_files(source, dest, source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3,
              use_threads=False)
listed = {os.path.basename(i.path): i.size for i in s3.get_file_info(fs.FileSelector(dest))}
for name in sorted(os.listdir(source)):
    size = os.path.getsize(os.path.join(source, name))
    if listed.get(name) != size:
        sys.exit(f"upload of {name} to s3://{dest}/ failed: listed {listed.get(name)} bytes, expected {size}")
    print(f"uploaded s3://{dest}/{name} ({size} bytes)", file=sys.stderr)
