"""Upload every file of a local directory to s3://BUCKET/PREFIX/ on the local S3 server
(pyarrow's S3FileSystem: multipart uploads). Usage: upload.py DIR BUCKET/PREFIX"""
import os
import sys

from pyarrow import fs

source, dest = sys.argv[1:3]
s3 = fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http",
                     access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                     region="us-east-1")
fs.copy_files(source, dest, source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3)
for info in s3.get_file_info(fs.FileSelector(dest)):
    print(f"uploaded s3://{info.path} ({info.size} bytes)", file=sys.stderr)
