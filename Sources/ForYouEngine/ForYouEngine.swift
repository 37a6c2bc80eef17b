// The engine as one import, without the service side: `import ForYouEngine` gives the
// interaction data, the rankers, batch scoring, evaluation, model artifacts, the training
// pipeline and the BLAS layer; no server, no database, no Kafka.
@_exported import Checksum
@_exported import LinearAlgebra
@_exported import Platform
@_exported import EventLog
@_exported import Interactions
@_exported import Rankers
@_exported import Reranking
@_exported import Scoring
@_exported import Evaluation
@_exported import Artifacts
@_exported import Training
