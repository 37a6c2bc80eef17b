// The engine as one importable library: `import ForYou`.
@_exported import LinearAlgebra
@_exported import Interactions
@_exported import Rankers
@_exported import Scoring
@_exported import Evaluation
@_exported import Artifacts
@_exported import EventLog
@_exported import CandidateStore
@_exported import PostgresStore
@_exported import Workbench
@_exported import Simulator
@_exported import Media
@_exported import FeedServer
@_exported import World
@_exported import Workers
@_exported import KafkaLog
