using System.Text.Json;

namespace EdgeSlm.Testing;

/// <summary>Where the repository and its test datasets are, and real sentences from them.</summary>
public static class TestEnvironment
{
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>The datasets the tests read (train splits only), inside the repository: tests/data, with their sources and licences.</summary>
    public static string DatasetsDirectory
    {
        get
        {
            string path = Path.Combine(RepositoryRoot, "tests", "data");
            return Directory.Exists(path) ? path : throw new DirectoryNotFoundException($"the test datasets are not at {path}");
        }
    }

    /// <summary>
    /// Real utterances, spread over the four datasets and over each file (every k-th line), deterministic.
    /// Only train splits: test splits are held out.
    /// </summary>
    public static IReadOnlyList<string> Sentences(int count)
    {
        string[] files = ["snips2017/train.jsonl", "hwu64/train.jsonl", "clinc150/train.jsonl", "ha_intents_en/train.jsonl"];
        var result = new List<string>();
        int perFile = (count + files.Length - 1) / files.Length;
        foreach (string file in files)
        {
            string[] lines = File.ReadAllLines(Path.Combine(DatasetsDirectory, file));
            int step = Math.Max(1, lines.Length / perFile);
            for (int i = 0; i < lines.Length && result.Count < count && i / step < perFile; i += step)
            {
                using JsonDocument json = JsonDocument.Parse(lines[i]);
                result.Add(json.RootElement.GetProperty("text").GetString()!.Trim());
            }
        }
        return result;
    }

    /// <summary>Set by .ci/run for the emulated boards: at most this many prompt and generated tokens per decoder test.</summary>
    public const string DecoderTokensVariable = "EDGESLM_DECODER_TEST_TOKENS";

    /// <summary>
    /// <paramref name="tokens"/>, or fewer when <see cref="DecoderTokensVariable"/> says so: under qemu each token
    /// of the tiny decoders costs hundreds of milliseconds (their 50k-row output matrix, float work in soft float).
    /// </summary>
    public static int DecoderTokens(int tokens) =>
        int.TryParse(Environment.GetEnvironmentVariable(DecoderTokensVariable), out int cap) && cap >= 1 ? Math.Min(tokens, cap) : tokens;

    private static string FindRepositoryRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EdgeSlm.sln")))
            {
                return directory.FullName;
            }
        }
        throw new DirectoryNotFoundException($"no EdgeSlm.sln above {AppContext.BaseDirectory}");
    }
}
