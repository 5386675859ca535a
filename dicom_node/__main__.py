from dicom_node.cli import app

app()
