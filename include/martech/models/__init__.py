"""Customer intelligence: RFM, lifecycle, CLV, lead scores, clusters and recommendations."""
